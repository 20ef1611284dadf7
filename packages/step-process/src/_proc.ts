import { type Host, HostError, isNotFound } from "@atomkit/core";

/** What /proc/<pid>/stat tells about a live process. */
export interface ProcStat {
  pid: number;
  ppid: number;
  pgrp: number;
  session: number;
  /** Field 22: clock ticks after boot. With the boot id, it tells a recycled pid from the original. */
  startTime: number;
}

/** Who a process is, across observes and processes: a pid alone can be recycled. */
export interface Identity {
  pid: number;
  startTime: number;
  bootId: string;
}

export const sameIdentity = (a: Identity, b: Identity): boolean =>
  a.pid === b.pid && a.startTime === b.startTime && a.bootId === b.bootId;

/** A host file that may vanish (the process exited): `null` then. */
async function readOrNull(host: Host, path: string): Promise<Buffer | null> {
  try {
    return await host.readFile(path);
  } catch (error) {
    // a process that exits between two reads leaves ENOENT or ESRCH ("No such process")
    if (isNotFound(error) || /ESRCH|No such process/i.test(String((error as Error)?.message))) return null;
    throw error;
  }
}

/** The process's stat, or `null` when no live process has this pid (zombies count as gone). */
export async function readStat(host: Host, pid: number): Promise<ProcStat | null> {
  const raw = await readOrNull(host, `/proc/${pid}/stat`);
  if (raw === null) return null;
  const text = raw.toString("utf8");
  // the command name (field 2) is in parentheses and may itself hold spaces and ")"
  const rest = text
    .slice(text.lastIndexOf(")") + 2)
    .trim()
    .split(" ");
  const state = rest[0];
  const startTime = Number(rest[19]);
  if (!state || !Number.isFinite(startTime)) {
    throw new HostError("OTHER", `cannot parse /proc/${pid}/stat`, {
      host: host.name,
      expected: "the 52 fields of proc(5) stat",
      found: text.slice(0, 200) || "an empty file",
      hint: "step-process needs Linux procfs; a Host whose readFile trusts stat's size (0 on procfs) reads it empty",
    });
  }
  if (state === "Z" || state === "X" || state === "x") {
    // The thread-group leader turns zombie while its other threads may still be exiting, and they hold
    // the process's files (its listening socket) a moment longer: a restart then fails with EADDRINUSE.
    // Gone only once the leader is the last task left.
    const tasks = await host.readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
    if (tasks.length <= 1) return null;
  }
  return {
    pid,
    ppid: Number(rest[1]),
    pgrp: Number(rest[2]),
    session: Number(rest[3]),
    startTime,
  };
}

export async function readBootId(host: Host): Promise<string> {
  return (await host.readFile("/proc/sys/kernel/random/boot_id")).toString("utf8").trim();
}

/** The live process with this identity, or `null` when it exited or the pid now names another process. */
export async function findIdentity(host: Host, id: Identity): Promise<ProcStat | null> {
  const [stat, bootId] = await Promise.all([readStat(host, id.pid), readBootId(host)]);
  if (!stat || bootId !== id.bootId || stat.startTime !== id.startTime) return null;
  return stat;
}

export async function readCmdline(host: Host, pid: number): Promise<string[] | null> {
  const raw = await readOrNull(host, `/proc/${pid}/cmdline`);
  if (raw === null) return null;
  if (raw.length === 0) return [];
  const words = raw.toString("utf8").split("\0");
  // argv ends with a NUL: exactly one trailing empty element is the terminator, not an argument
  if (words.at(-1) === "") words.pop();
  return words;
}

export async function readEnviron(host: Host, pid: number): Promise<Record<string, string> | null> {
  const raw = await readOrNull(host, `/proc/${pid}/environ`);
  if (raw === null) return null;
  const env: Record<string, string> = {};
  for (const entry of raw.toString("utf8").split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

export interface Credentials {
  uid: number;
  gid: number;
  groups: number[];
}

/** Real uid/gid and supplementary groups from /proc/<pid>/status (`self`: the host's own user). */
export async function readCredentials(host: Host, pid: number | "self"): Promise<Credentials | null> {
  const raw = await readOrNull(host, `/proc/${pid}/status`);
  if (raw === null) return null;
  // [ \t]*, not \s*: an empty field (no supplementary groups) must not swallow the next line
  const field = (name: string) =>
    new RegExp(`^${name}:[ \t]*(.*)$`, "m").exec(raw.toString("utf8"))?.[1] ?? "";
  const uid = Number(field("Uid").split(/\s+/)[0]);
  const gid = Number(field("Gid").split(/\s+/)[0]);
  const groups = field("Groups")
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .sort((a, b) => a - b);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return null;
  return { uid, gid, groups };
}

export async function readLinkOrNull(host: Host, path: string): Promise<string | null> {
  try {
    return await host.readlink(path);
  } catch (error) {
    if (isNotFound(error) || /ESRCH|No such process/i.test(String((error as Error)?.message))) return null;
    throw error;
  }
}

/** Where fd 1 or 2 writes, when that is a regular file it can be reopened in append mode; else `null`. */
export async function readOutput(host: Host, pid: number, fd: 1 | 2): Promise<string | null> {
  const target = await readLinkOrNull(host, `/proc/${pid}/fd/${fd}`).catch(() => null);
  if (!target?.startsWith("/") || target.endsWith(" (deleted)")) return null;
  const st = await host.stat(target).catch(() => null);
  return st?.type === "file" ? target : null;
}

// --- Pid files ---

/** Linux reports 100 everywhere but Alpha; asked once per host all the same. */
const clockTicks = new WeakMap<Host, Promise<number>>();

function ticksPerSecond(host: Host): Promise<number> {
  let ticks = clockTicks.get(host);
  if (!ticks) {
    ticks = host
      .exec(["getconf", "CLK_TCK"], { reject: false })
      .then((r) => Number(r.stdout.trim()) || 100)
      .catch(() => 100);
    clockTicks.set(host, ticks);
  }
  return ticks;
}

/**
 * A pid file names a process that must have started before the file was written. A live process that
 * started clearly after the file's mtime holds a recycled pid. Slack covers second-granular mtimes
 * (SFTP) and btime's rounding.
 */
const RECYCLED_SLACK_MS = 3_000;

export type PidFileStatus =
  | { status: "absent" }
  | { status: "dead"; pid: number }
  | { status: "recycled"; pid: number }
  | { status: "running"; pid: number; stat: ProcStat };

export async function readPidFile(host: Host, pidFile: string): Promise<PidFileStatus> {
  const st = await host.stat(pidFile);
  if (!st) return { status: "absent" };
  const raw = await readOrNull(host, pidFile);
  if (raw === null) return { status: "absent" };
  const text = raw.toString("utf8").trim();
  if (text === "") return { status: "absent" };
  if (!/^[1-9]\d{0,9}$/.test(text)) {
    throw new HostError("OTHER", `pid file ${pidFile} does not hold a pid`, {
      host: host.name,
      expected: "a process id, e.g. 4242",
      found: JSON.stringify(text.slice(0, 80)),
      hint: "point pidFile at the file the service writes its pid to, or remove the broken file",
    });
  }
  const pid = Number(text);
  const stat = await readStat(host, pid);
  if (!stat) return { status: "dead", pid };
  const [ticks, procStat] = await Promise.all([ticksPerSecond(host), host.readFile("/proc/stat")]);
  const btime = Number(/^btime\s+(\d+)/m.exec(procStat.toString("utf8"))?.[1]);
  if (Number.isFinite(btime)) {
    const startedAtMs = btime * 1000 + (stat.startTime * 1000) / ticks;
    if (startedAtMs > st.mtimeMs + RECYCLED_SLACK_MS) return { status: "recycled", pid };
  }
  return { status: "running", pid, stat };
}

/** Removes the pid file only when it still names `pid`: another run may have written it since. */
export async function removePidFileIf(host: Host, pidFile: string, pid: number): Promise<void> {
  const raw = await readOrNull(host, pidFile).catch(() => null);
  if (raw !== null && raw.toString("utf8").trim() === String(pid)) await host.rm(pidFile, { force: true });
}

// --- Scanning /proc (process.stop's `match`) ---

export interface Candidate {
  pid: number;
  ppid: number;
  argv: string[];
}

/** Every live process whose command line (argv joined by spaces) matches `re`, except `exclude`. */
export async function scanProcesses(
  host: Host,
  re: RegExp,
  exclude: readonly number[],
): Promise<Candidate[]> {
  const pids = (await host.readdir("/proc"))
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => !exclude.includes(pid));
  const found: Candidate[] = [];
  const BATCH = 32;
  for (let i = 0; i < pids.length; i += BATCH) {
    await Promise.all(
      pids.slice(i, i + BATCH).map(async (pid) => {
        const argv = await readCmdline(host, pid).catch(() => null);
        // kernel threads and zombies have an empty command line
        if (!argv?.length || !re.test(argv.join(" "))) return;
        const stat = await readStat(host, pid).catch(() => null);
        if (stat) found.push({ pid, ppid: stat.ppid, argv });
      }),
    );
  }
  return found.sort((a, b) => a.pid - b.pid);
}

import type { Host } from "@atomkit/core";
import { deepEqual, ParamsFieldError } from "@atomkit/core/kit";
import { realDir } from "./_launch";
import {
  type Credentials,
  readCmdline,
  readCredentials,
  readEnviron,
  readLinkOrNull,
  readOutput,
} from "./_proc";

/**
 * How a process was started: what serves. `same()` compares this and nothing else, so a restart of the
 * identical launch (a new pid) is the same state, and the same command from another release is not.
 * Secret values are never in it: only their names.
 */
export interface Launch {
  argv: string[];
  /** The working directory as given, e.g. `/srv/app/current`. */
  cwd: string;
  /** That directory resolved when the process started, e.g. `/srv/app/releases/42`: the release serving. */
  dir: string;
  uid: number;
  gid: number;
  groups: number[];
  /**
   * Variables set for the process: on top of the host's environment, or (with `clearEnv`) its whole
   * environment. `null`: the variable must be unset.
   */
  env: Record<string, string | null>;
  /** Names of variables whose values are secret: set at start, never recorded. */
  secretEnv: string[];
  /** `env` is the whole environment (restarted with `env -i`). */
  clearEnv: boolean;
}

/** Files fd 1 and 2 append to (`null`: a pipe, tty or /dev/null): needed to restart, never compared. */
export interface Output {
  stdout: string | null;
  stderr: string | null;
}

/** Which process runs now: evidence only, never compared by `same()`. */
export interface Evidence {
  pid: number;
  /** Clock ticks after boot (field 22 of /proc/<pid>/stat): with `bootId`, tells a recycled pid. */
  startTime: number;
  bootId: string;
}

export type Running = Evidence & {
  running: true;
  launch: Launch;
  /** The launch comes from Atomkit's launch record beside the pid file (true) or was read from /proc. */
  recorded: boolean;
  output: Output;
  /**
   * Why undo could not restart this process faithfully (its launch directory or environment is not
   * known): apply refuses to stop it, before stopping anything.
   */
  problem?: string;
};

export type ProcessState = { running: false } | Running;

export function sameLaunch(a: Launch, b: Launch): boolean {
  return (
    deepEqual(a.argv, b.argv) &&
    a.dir === b.dir &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    deepEqual(a.groups, b.groups) &&
    deepEqual(a.env, b.env) &&
    deepEqual([...a.secretEnv].sort(), [...b.secretEnv].sort()) &&
    a.clearEnv === b.clearEnv
  );
}

/** What in `b` differs from `a`, for an error message (no values of env: they may be private). */
export function launchDiff(a: Launch, b: Launch): string {
  const out: string[] = [];
  if (!deepEqual(a.argv, b.argv)) out.push("command");
  if (a.dir !== b.dir) out.push(`directory ${a.dir} (wanted ${b.dir})`);
  if (a.uid !== b.uid || a.gid !== b.gid || !deepEqual(a.groups, b.groups)) out.push("user");
  if (!deepEqual(a.env, b.env) || a.clearEnv !== b.clearEnv) out.push("environment");
  if (!deepEqual([...a.secretEnv].sort(), [...b.secretEnv].sort())) out.push("secret variable names");
  return out.join(", ") || "nothing";
}

// --- Reading a launch from /proc (a process Atomkit did not start) ---

export interface ProcLaunch {
  launch: Launch;
  output: Output;
  /** The full environment, for the caller to record per its `env` option; never stored as is. */
  environ: Record<string, string>;
}

/** argv, cwd, credentials, environment and outputs of a live process; `null` when it exited meanwhile. */
export async function readProcLaunch(host: Host, pid: number): Promise<ProcLaunch | null> {
  const [argv, cwd, creds, environ, stdout, stderr] = await Promise.all([
    readCmdline(host, pid),
    readLinkOrNull(host, `/proc/${pid}/cwd`),
    readCredentials(host, pid),
    readEnviron(host, pid),
    readOutput(host, pid, 1),
    readOutput(host, pid, 2),
  ]);
  if (argv === null || cwd === null || creds === null || environ === null) return null;
  return {
    launch: { argv, cwd, dir: cwd, ...credsOf(creds), env: {}, secretEnv: [], clearEnv: false },
    output: { stdout, stderr },
    environ,
  };
}

/**
 * Where a process Atomkit did not start was launched. The kernel knows only where it is *now*, which a
 * server may have changed after start (busybox httpd `-h public`). A shell-started process carries the
 * directory it was started in as `PWD`: when that resolves to its current directory, the two agree.
 * Otherwise it is unknown, and undo could not restart it faithfully.
 */
export async function launchDirOf(
  host: Host,
  now: string,
  environ: Record<string, string>,
): Promise<{ cwd: string; dir: string } | { problem: string }> {
  const pwd = environ.PWD;
  if (pwd?.startsWith("/")) {
    const resolved = await realDir(host, pwd);
    if (resolved === now) return { cwd: pwd, dir: now };
    return {
      problem: `it works in ${now}, but was started in ${pwd}${resolved ? ` (${resolved})` : ""}: it changed directory after it started`,
    };
  }
  return {
    problem: `it works in ${now}, and nothing tells where it was started (no PWD in its environment)`,
  };
}

export function credsOf(c: Credentials): Pick<Launch, "uid" | "gid" | "groups"> {
  return { uid: c.uid, gid: c.gid, groups: c.groups };
}

// --- Checking states read back from a trail ---

/** The state check both kinds give core: a trail's state must be exactly one of these shapes. */
export function checkState(value: unknown, extra: readonly string[] = []): ProcessState {
  const o = object(value, "");
  if (o.running === false) {
    keys(o, ["running"], "");
    return { running: false };
  }
  if (o.running !== true) throw new ParamsFieldError("running", "expected true or false");
  keys(o, ["running", "pid", "startTime", "bootId", "launch", "recorded", "output", "problem", ...extra], "");
  count(o.pid, "pid", 1);
  count(o.startTime, "startTime", 0);
  if (typeof o.bootId !== "string" || !/^[0-9a-f-]{1,64}$/i.test(o.bootId))
    throw new ParamsFieldError("bootId", "expected a boot id");
  if (typeof o.recorded !== "boolean") throw new ParamsFieldError("recorded", "expected true or false");
  if (o.problem !== undefined && typeof o.problem !== "string")
    throw new ParamsFieldError("problem", "expected text");
  const out = object(o.output, "output");
  keys(out, ["stdout", "stderr"], "output");
  for (const f of ["stdout", "stderr"] as const) if (out[f] !== null) absolute(out[f], `output.${f}`);
  checkLaunch(o.launch);
  return value as ProcessState;
}

function checkLaunch(value: unknown): void {
  const l = object(value, "launch");
  keys(l, ["argv", "cwd", "dir", "uid", "gid", "groups", "env", "secretEnv", "clearEnv"], "launch");
  if (
    !Array.isArray(l.argv) ||
    !l.argv.length ||
    !l.argv.every((w) => typeof w === "string" && !w.includes("\0"))
  )
    throw new ParamsFieldError("launch.argv", "expected a non-empty list of strings");
  absolute(l.cwd, "launch.cwd");
  absolute(l.dir, "launch.dir");
  count(l.uid, "launch.uid", 0);
  count(l.gid, "launch.gid", 0);
  if (!Array.isArray(l.groups)) throw new ParamsFieldError("launch.groups", "expected a list of group ids");
  for (const [i, g] of l.groups.entries()) count(g, `launch.groups.${i}`, 0);
  const env = object(l.env, "launch.env");
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      throw new ParamsFieldError(`launch.env.${k}`, "not a variable name");
    if (v !== null && (typeof v !== "string" || v.includes("\0")))
      throw new ParamsFieldError(`launch.env.${k}`, "expected a string or null");
  }
  if (
    !Array.isArray(l.secretEnv) ||
    !l.secretEnv.every((n) => typeof n === "string" && /^[A-Za-z_][A-Za-z0-9_]*$/.test(n))
  )
    throw new ParamsFieldError("launch.secretEnv", "expected a list of variable names");
  if (typeof l.clearEnv !== "boolean")
    throw new ParamsFieldError("launch.clearEnv", "expected true or false");
}

function object(value: unknown, path: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new ParamsFieldError(path, "expected an object");
  return value as Record<string, unknown>;
}

function keys(o: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k))
      throw new ParamsFieldError(path ? `${path}.${k}` : k, `unexpected field "${k}"`);
}

function count(value: unknown, path: string, min: number): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min)
    throw new ParamsFieldError(path, `expected a whole number of at least ${min}`);
}

function absolute(value: unknown, path: string): void {
  if (typeof value !== "string" || !value.startsWith("/") || value.includes("\0"))
    throw new ParamsFieldError(path, "expected an absolute path");
}

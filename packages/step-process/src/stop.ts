import { defineStep, type Host, type StepContext, show } from "@atomkit/core";
import { type HealthCheck, healthOf, type NormalizedHealth, probeOnce } from "./_health";
import { realDir } from "./_launch";
import {
  type ProcStat,
  readBootId,
  readCredentials,
  readPidFile,
  readStat,
  removePidFileIf,
  sameIdentity,
  scanProcesses,
  terminate,
} from "./_proc";
import { readRecord, recordPath, removeRecordIf } from "./_record";
import { scratchPidFile, startLaunch } from "./_start";
import {
  checkState,
  type Launch,
  launchDirOf,
  type ProcessState,
  type Running,
  readProcLaunch,
  sameLaunch,
} from "./_state";
import {
  absolutePath,
  argvOf,
  checkFields,
  envNameOf,
  envOf,
  invalid,
  masker,
  msOf,
  regexOf,
  showArgv,
  signalOf,
  stepError,
} from "./_utils";

const KIND = "process.stop";

export interface StopProcessOptions {
  /** Absolute path of the pid file naming the process. Give this or `match`. */
  pidFile?: string;
  /**
   * A regular expression matched against the command line (argv joined by spaces). Exactly one process
   * (or one parent of all matches, e.g. a server and its workers) must match. Give this or `pidFile`.
   */
  match?: string;
  /** The first signal. Default `TERM`. */
  signal?: string;
  /** How long to wait for the process to exit before SIGKILL. Default 10 000. */
  graceMs?: number;
  /**
   * What of the environment of a process Atomkit did not start observe records, so undo restarts it
   * with it: `"keep"` (default: all of it; undo starts it from exactly that environment), a list of
   * names, or `"none"` (undo's process gets the host's default environment: not a faithful restart).
   * Values are written to the trail, so `"keep"` refuses, before stopping anything, a process with
   * secret-looking variables (`*TOKEN*`, `*PASSWORD*`, …) whose values are not given in `secretEnv`.
   * A process started by `process.start` is restarted from its launch record instead.
   */
  env?: "keep" | "none" | string[];
  /**
   * Values for secret variables of the process, e.g. `{ TOKEN: process.env.TOKEN }`. Observe records
   * only their names; undo sets them from here. Never written to the trail, so `recover` and `undo
   * <runId>` take them from the deploy file again; without it undo fails loudly, starting nothing.
   */
  secretEnv?: Record<string, string>;
  /** Where undo's restarted process writes when the original's stdout was not a file. Default `/dev/null`. */
  logFile?: string;
  /**
   * Checked by undo after the restart; observe also probes it once (http/tcp/exec), so a rollback is
   * verified only when the restored process answers. Default: none.
   */
  health?: HealthCheck;
  /** Without `health`: the restarted process must stay up this long. Default 500. */
  minUptimeMs?: number;
  /**
   * How to restart a process Atomkit did not start, where /proc cannot tell: `cwd`, the directory it
   * was started in (a server may change directory after start; /proc shows only where it is now), and
   * `command`, its argv when it rewrote its own command line (`nginx: master process …`).
   */
  restart?: { cwd?: string; command?: string[] };
}

/** Validated params, defaults filled in. `secretEnv` (values) is a secret path; the names are not. */
export interface StopProcessParams {
  pidFile?: string;
  match?: string;
  signal: string;
  graceMs: number;
  env: "none" | "keep" | string[];
  secretEnvNames: string[];
  secretEnv?: Record<string, string>;
  logFile: string;
  health?: NormalizedHealth;
  minUptimeMs: number;
  restart?: { cwd?: string; command?: string[] };
}

/**
 * Whether the process runs, and its launch: everything undo needs to start it again as it was (command,
 * the directory it was started in, user, environment with secret values left out). `same()` compares
 * the launch (and the health probe), never the pid. See `ProcessState`.
 */
export type StopProcessState = ProcessState & { healthy?: boolean };

/** Names whose values `env: "keep"` refuses to write to the trail. */
const SECRET_NAME_RE =
  /SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|PRIVATE_?KEY|API_?KEY|ACCESS_?KEY/i;

function params(input: StopProcessOptions): StopProcessParams {
  const o = checkFields(input, {
    pidFile: (v, p) => (v === undefined ? undefined : absolutePath(v, p)),
    match: (v, p) => (v === undefined ? undefined : regexOf(v, p)),
    signal: (v, p) => signalOf(v, p, "TERM"),
    graceMs: (v, p) => msOf(v, p, 10_000),
    env: (v, p): StopProcessParams["env"] => {
      if (v === undefined || v === "keep" || v === "none") return v ?? "keep";
      if (!Array.isArray(v))
        invalid(p, `expected "keep", "none" or a list of variable names, found ${show(v)}`);
      return v.map((name, i) => envNameOf(String(name), `${p}.${i}`));
    },
    secretEnv: (v, p) => (v === undefined ? undefined : envOf(v, p)),
    // these params as a trail holds them (validated again by recover and undo): the names, not the values
    secretEnvNames: (v, p) => {
      if (v === undefined) return undefined;
      if (!Array.isArray(v)) invalid(p, `expected a list of variable names, found ${show(v)}`);
      return v.map((n, i) => envNameOf(String(n), `${p}.${i}`)).sort();
    },
    logFile: (v, p) => (v === undefined ? "/dev/null" : absolutePath(v, p)),
    health: healthOf,
    minUptimeMs: (v, p) => msOf(v, p, 500),
    restart: (v, p) => (v === undefined ? undefined : restartOf(v, p)),
  });
  if ((o.pidFile === undefined) === (o.match === undefined)) {
    invalid(
      o.pidFile === undefined ? "pidFile" : "match",
      `expected exactly one of pidFile and match, found ${o.pidFile === undefined ? "neither" : "both"}`,
    );
  }
  const out: StopProcessParams = {
    signal: o.signal,
    graceMs: o.graceMs,
    env: o.env,
    secretEnvNames: o.secretEnv ? Object.keys(o.secretEnv).sort() : [],
    logFile: o.logFile,
    minUptimeMs: o.minUptimeMs,
  };
  if (o.pidFile !== undefined) out.pidFile = o.pidFile;
  if (o.match !== undefined) out.match = o.match;
  if (o.secretEnv !== undefined) out.secretEnv = o.secretEnv;
  if (o.secretEnvNames !== undefined) {
    if (o.secretEnv !== undefined && o.secretEnvNames.join() !== out.secretEnvNames.join()) {
      invalid(
        "secretEnvNames",
        `expected exactly the names of secretEnv (${out.secretEnvNames.join(", ")}), found ${o.secretEnvNames.join(", ")}`,
      );
    }
    out.secretEnvNames = o.secretEnvNames;
  }
  if (o.restart !== undefined) out.restart = o.restart;
  if (o.health) out.health = o.health;
  if (o.health && "logLine" in o.health && out.logFile === "/dev/null") {
    // the original's own log is used when it had one; this is the fallback the check must be able to read
    invalid("logFile", "expected a log file for the logLine health check to read, found none");
  }
  return out;
}

function restartOf(value: unknown, path: string): NonNullable<StopProcessParams["restart"]> {
  const r = checkFields(
    value,
    {
      cwd: (v, p) => (v === undefined ? undefined : absolutePath(v, p)),
      command: (v, p) => (v === undefined ? undefined : argvOf(v, p)),
    },
    path,
  );
  const out: NonNullable<StopProcessParams["restart"]> = {};
  if (r.cwd !== undefined) out.cwd = r.cwd;
  if (r.command !== undefined) out.command = r.command;
  return out;
}

// --- Observe ---

async function locate(ctx: StepContext, p: StopProcessParams): Promise<ProcStat | null> {
  const { host } = ctx;
  if (p.pidFile) {
    const found = await readPidFile(host, p.pidFile);
    if (found.status === "recycled") {
      ctx.log(
        `pid file ${p.pidFile} names pid ${found.pid}, which started after the file was written: a reused pid, not touched`,
      );
    }
    return found.status === "running" ? found.stat : null;
  }
  const matches = await scanProcesses(host, new RegExp(p.match!), host.local ? [process.pid] : []);
  const pids = new Set(matches.map((m) => m.pid));
  // a server and its workers share a command line: the one whose parent is not a match is the target
  const roots = matches.filter((m) => !pids.has(m.ppid));
  if (roots.length === 0) return null;
  if (roots.length > 1) {
    throw stepError(ctx, KIND, "observe", `${roots.length} unrelated processes match /${p.match}/`, {
      expected: "exactly one process (or one parent of all matches)",
      found: roots
        .slice(0, 5)
        .map((m) => `pid ${m.pid}: ${showArgv(m.argv, 80)}`)
        .join("; "),
      hint: "make match more specific (anchor it, add an argument), or use pidFile",
    });
  }
  return readStat(host, roots[0]!.pid);
}

async function observe(ctx: StepContext, p: StopProcessParams): Promise<StopProcessState> {
  const { host } = ctx;
  const stat = await locate(ctx, p);
  if (!stat) return { running: false };
  const { pid } = stat;
  const ev = { pid, startTime: stat.startTime, bootId: await readBootId(host) };
  let state: Running;
  const recorded = p.pidFile ? await readRecord(host, p.pidFile, ev) : null;
  if (recorded) {
    // started by process.start (or restarted by this kind): its launch record is the truth
    state = { running: true, ...ev, launch: recorded.launch, recorded: true, output: recorded.output };
  } else {
    let proc: Awaited<ReturnType<typeof readProcLaunch>>;
    try {
      proc = await readProcLaunch(host, pid);
    } catch (error) {
      throw stepError(ctx, KIND, "observe", `cannot read /proc/${pid} to record how to restart it`, {
        expected: "its command line, working directory and environment",
        found: (error as Error)?.message?.split("\n")[0],
        hint: "run the deploy as the process's user or as root",
        cause: error,
      });
    }
    // it exited while we looked: it is stopped
    if (!proc || !(await readStat(host, pid))) return { running: false };
    if (proc.launch.argv.length === 0) {
      throw stepError(ctx, KIND, "observe", `pid ${pid} has an empty command line`, {
        expected: "the argv of a user process",
        found: "nothing (a kernel thread, or a Host that reads procfs files as empty)",
        hint: "point pidFile/match at the service itself",
      });
    }
    state = await foreignLaunch(host, p, ev, proc);
  }
  if (p.health && !("logLine" in p.health)) {
    return { ...state, healthy: (await probeOnce(p.health, { host, cwd: state.launch.dir })).ok };
  }
  return state;
}

/** The launch of a process Atomkit did not start, from /proc and the step's `env` and `restart`. */
async function foreignLaunch(
  host: Host,
  p: StopProcessParams,
  ev: { pid: number; startTime: number; bootId: string },
  proc: NonNullable<Awaited<ReturnType<typeof readProcLaunch>>>,
): Promise<Running> {
  const problems: string[] = [];
  const launch: Launch = { ...proc.launch, ...(p.restart?.command ? { argv: p.restart.command } : {}) };
  if (p.restart?.cwd) {
    launch.cwd = p.restart.cwd;
    launch.dir = (await realDir(host, p.restart.cwd)) ?? p.restart.cwd;
  } else {
    const where = await launchDirOf(host, proc.launch.dir, proc.environ);
    if ("problem" in where)
      problems.push(`${where.problem}; give restart: { cwd } (where it is started from)`);
    else Object.assign(launch, where);
  }
  const secret = new Set(p.secretEnvNames);
  launch.secretEnv = p.secretEnvNames.filter((n) => n in proc.environ);
  if (p.env === "keep") {
    launch.clearEnv = true;
    const unrecorded: string[] = [];
    for (const name of Object.keys(proc.environ).sort()) {
      if (secret.has(name)) continue;
      if (SECRET_NAME_RE.test(name)) unrecorded.push(name);
      else launch.env[name] = proc.environ[name]!;
    }
    if (unrecorded.length) {
      problems.push(
        `its variables ${unrecorded.join(", ")} look secret, so their values are not recorded; give them in secretEnv (e.g. secretEnv: { ${unrecorded[0]}: process.env.${unrecorded[0]} }) or list the variables to keep in env: [...]`,
      );
    }
  } else if (Array.isArray(p.env)) {
    for (const name of p.env)
      if (!secret.has(name)) launch.env[name] = name in proc.environ ? proc.environ[name]! : null;
  }
  if ((p.env !== "none" || launch.secretEnv.length) && launch.argv[0]!.includes("=")) {
    problems.push(
      `its program ${JSON.stringify(launch.argv[0])} holds "=", which env would read as a variable`,
    );
  }
  return {
    running: true,
    ...ev,
    launch,
    recorded: false,
    output: proc.output,
    ...(problems.length ? { problem: problems.join("; ") } : {}),
  };
}

/** What undo restores: the same launch (not the same pid), answering its health probe as it did. */
function sameProcess(a: StopProcessState, b: StopProcessState): boolean {
  if (!a.running || !b.running) return a.running === b.running;
  return sameLaunch(a.launch, b.launch) && a.healthy === b.healthy;
}

// --- Apply ---

async function apply(ctx: StepContext, p: StopProcessParams, before: StopProcessState): Promise<void> {
  if (!before.running) return;
  const fail = (message: string, details: Parameters<typeof stepError>[4]) =>
    stepError(ctx, KIND, "apply", message, details);
  const now = await observe(ctx, p);
  if (!now.running) {
    ctx.log("the process is already gone");
    return;
  }
  if (!sameIdentity(now, before)) {
    throw fail("the process changed between observe and apply", {
      expected: `pid ${before.pid} (start time ${before.startTime})`,
      found: `pid ${now.pid} (start time ${now.startTime})`,
      hint: "something restarted it (a supervisor?); run the deploy again",
    });
  }
  // everything undo needs must be known now, while nothing is stopped yet
  if (now.problem) {
    throw fail(`undo could not restart pid ${now.pid} faithfully, so it was not stopped`, {
      expected: "where it was started, and every variable of its environment, known",
      found: now.problem,
      hint: "start the service with process.start (its launch is then recorded), or give what is missing",
    });
  }
  const missing = now.launch.secretEnv.filter((n) => p.secretEnv?.[n] === undefined);
  if (missing.length) {
    throw fail("secretEnv values are missing", {
      expected: `a value for every secret variable of the process (${now.launch.secretEnv.join(", ")})`,
      found: `no value for ${missing.join(", ")} (secrets never reach the trail)`,
      hint: `give them: secretEnv: { ${missing[0]}: process.env.${missing[0]} }`,
    });
  }
  const unable = await cannotRestartAs(ctx.host, now);
  if (unable) throw fail("undo could not restart the process as its user", unable);
  const how = await terminate(ctx.host, now, { signal: p.signal, graceMs: p.graceMs, log: ctx.log });
  ctx.log(`pid ${now.pid} ${how === "killed" ? "killed with SIGKILL" : "stopped"}`);
  if (p.pidFile) {
    await removePidFileIf(ctx.host, p.pidFile, now.pid);
    await removeRecordIf(ctx.host, p.pidFile, now.pid);
  }
}

/** Why the deploy user could not restart a process owned by someone else; undefined when it can. */
async function cannotRestartAs(
  host: Host,
  s: Running,
): Promise<{ expected: string; found: string; hint: string } | undefined> {
  const self = await readCredentials(host, "self");
  if (!self || (self.uid === s.launch.uid && self.gid === s.launch.gid)) return undefined;
  if (self.uid !== 0) {
    return {
      expected: `the deploy user to be uid ${s.launch.uid} or root`,
      found: `uid ${self.uid}`,
      hint: "deploy as the service's user, or as root",
    };
  }
  const r = await host.exec(["setpriv", "--version"], { reject: false }).catch(() => null);
  if (r?.code !== 0) {
    return {
      expected: "`setpriv` (util-linux) on the host, to restart as another user",
      found: "no setpriv",
      hint: "install util-linux, or deploy as the service's user",
    };
  }
  return undefined;
}

// --- Undo ---

/**
 * Undo: starts the process again from its recorded launch (command, the directory it was started in,
 * user, environment; secret values from `secretEnv`), detached, writes the pid file and launch record
 * and waits for `health`. Cannot restore: its pid, in-memory state and open connections.
 */
async function undo(ctx: StepContext, p: StopProcessParams, before: StopProcessState): Promise<void> {
  if (!before.running) return;
  const fail = (message: string, details: Parameters<typeof stepError>[4]) =>
    stepError(ctx, KIND, "undo", message, details);
  const mask = masker(Object.values(p.secretEnv ?? {}));
  const { launch } = before;
  const now = await observe(ctx, p);
  if (now.running) {
    if (sameLaunch(now.launch, launch)) {
      ctx.log(`pid ${now.pid} already runs the recorded launch: nothing to restart`);
      return;
    }
    throw fail("another process runs in its place", {
      expected: "no process, so the recorded one can be started again",
      found: mask(`pid ${now.pid}: ${showArgv(now.launch.argv)} in ${now.launch.dir}`),
      hint: "stop that process first; undo does not start a second copy",
    });
  }
  const secrets: Record<string, string> = {};
  for (const name of launch.secretEnv) {
    const value = p.secretEnv?.[name];
    if (value === undefined) {
      throw fail(`the value of secret variable ${name} is not available, so nothing was started`, {
        expected: `secretEnv.${name} in the step's params`,
        found:
          "nothing: secrets never reach the trail; recover and undo <runId> take them from the deploy file",
        hint: `run undo from the deploy file that holds it, or restart by hand with ${name} set: cd ${launch.dir} && ${showArgv(launch.argv)}`,
      });
    }
    secrets[name] = value;
  }
  const pidFile = p.pidFile ?? (await scratchPidFile(ctx.host));
  try {
    const started = await startLaunch(ctx, {
      launch,
      secrets,
      output: {
        stdout: before.output.stdout ?? p.logFile,
        stderr: before.output.stderr ?? before.output.stdout ?? p.logFile,
      },
      pidFile,
      record: p.pidFile !== undefined,
      health: p.health,
      minUptimeMs: p.minUptimeMs,
      mask,
    });
    if (started.ok) return;
    throw fail(started.exited ? "the restarted process exited" : "the restarted process is not healthy", {
      expected: started.expected,
      found: started.found,
      hint: started.hint,
    });
  } finally {
    // match mode: the launcher needed a file to hand the pid back through, nothing more
    if (!p.pidFile) await ctx.host.rm(pidFile, { force: true });
  }
}

/**
 * Stops a running process (by pid file or command-line match): the signal, `graceMs`, then SIGKILL.
 * Observe records its launch, so undo can start it again exactly as it was; apply refuses, before
 * stopping anything, a process it could not restart faithfully.
 */
export const stopProcess = defineStep({
  kind: KIND,
  package: "@atomkit/step-process",
  params,
  secret: ["secretEnv"],
  describe: (p) =>
    `stop ${p.pidFile ? `the process in ${p.pidFile}` : `the process matching /${p.match}/`} (SIG${p.signal}, then SIGKILL after ${p.graceMs} ms)`,
  observe,
  apply,
  undo: (ctx, p, before) => undo(ctx, p, before),
  same: sameProcess,
  state: (value: unknown) => {
    const { healthy, ...rest } = (value ?? {}) as Record<string, unknown>;
    if (healthy !== undefined && typeof healthy !== "boolean")
      throw new Error("healthy: expected true or false");
    checkState(rest);
    return value as StopProcessState;
  },
  // an undo to a recorded state restarts the process in its directory (its argv cannot be bounded by
  // paths: the trail's seal and the deploy-file check vouch for it)
  owns: (p, state) => [
    ...(p.pidFile ? [p.pidFile, recordPath(p.pidFile)] : []),
    ...(state?.running ? [state.launch.dir] : []),
  ],
});

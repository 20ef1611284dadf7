import { randomBytes } from "node:crypto";
import { deepEqual, defineStep, type Host, type StepContext } from "@atomkit/core";
import {
  describeHealth,
  type HealthCheck,
  healthOf,
  type NormalizedHealth,
  probeOnce,
  waitHealthy,
  waitUptime,
} from "./_health";
import { launch, logTail, sizeOf } from "./_launch";
import {
  type Credentials,
  findIdentity,
  type Identity,
  type ProcStat,
  readBootId,
  readCmdline,
  readCredentials,
  readEnviron,
  readLinkOrNull,
  readOutput,
  readPidFile,
  readStat,
  removePidFileIf,
  sameIdentity,
  scanProcesses,
  terminate,
} from "./_proc";
import {
  absolutePath,
  envNameOf,
  envOf,
  invalid,
  isRecord,
  masker,
  msOf,
  onlyKeys,
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
   * What of the process's environment observe records, so undo restarts it with it: `"keep"` (all of
   * it; undo starts from an empty environment) or a list of names. Default: none (undo's process gets
   * the host's default environment). Values are written to the trail: never list secrets here.
   */
  env?: "keep" | string[];
  /**
   * Values for secret variables of the process, e.g. `{ TOKEN: process.env.TOKEN }`. Observe records
   * only their names; undo sets them from here. Never written to the trail, so `recover` and `undo
   * <runId>` in a new process cannot restore them (undo then fails and says so).
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
}

/** What observe records: whether the process runs, and all undo needs to start it again as it was. */
export type StopProcessState =
  | { running: false }
  | {
      running: true;
      pid: number;
      startTime: number;
      bootId: string;
      argv: string[];
      /** As the kernel resolved it (symlinks followed), from /proc/<pid>/cwd. */
      cwd: string;
      uid: number;
      gid: number;
      groups: number[];
      /** Per the `env` option; `null`: the variable was not set. */
      env?: Record<string, string | null>;
      /** Names of `secretEnv` variables the process had (values never recorded). */
      secretEnv?: string[];
      /** Variables `env: "keep"` did not record because their names look secret. */
      unrecorded?: string[];
      /** Files fd 1 and 2 appended to; `null` for a pipe, socket, tty or /dev/null. */
      stdout: string | null;
      stderr: string | null;
      /** One probe of `health` (http, tcp, exec only). */
      healthy?: boolean;
    };

type Running = Extract<StopProcessState, { running: true }>;

/** Names whose values `env: "keep"` refuses to write to the trail. */
const SECRET_NAME_RE =
  /SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|PRIVATE_?KEY|API_?KEY|ACCESS_?KEY/i;

function params(input: StopProcessOptions): StopProcessParams {
  if (!isRecord(input)) invalid("", "must be an object { pidFile | match, … }");
  onlyKeys(
    input,
    ["pidFile", "match", "signal", "graceMs", "env", "secretEnv", "logFile", "health", "minUptimeMs"],
    "",
  );
  if ((input.pidFile === undefined) === (input.match === undefined)) {
    invalid(input.pidFile === undefined ? "pidFile" : "match", "give exactly one of pidFile and match");
  }
  const out: StopProcessParams = {
    signal: signalOf(input.signal, "signal", "TERM"),
    graceMs: msOf(input.graceMs, "graceMs", 10_000),
    env: "none",
    secretEnvNames: [],
    logFile: input.logFile === undefined ? "/dev/null" : absolutePath(input.logFile, "logFile"),
    minUptimeMs: msOf(input.minUptimeMs, "minUptimeMs", 500),
  };
  if (input.pidFile !== undefined) out.pidFile = absolutePath(input.pidFile, "pidFile");
  if (input.match !== undefined) {
    if (typeof input.match !== "string" || !input.match)
      invalid("match", "must be a regular expression source");
    try {
      new RegExp(input.match);
    } catch (error) {
      invalid("match", `is not a valid regular expression: ${(error as Error).message}`);
    }
    out.match = input.match;
  }
  if (input.env === "keep") out.env = "keep";
  else if (Array.isArray(input.env)) {
    out.env = input.env.map((name, i) => envNameOf(String(name), `env.${i}`));
  } else if (input.env !== undefined) invalid("env", 'must be "keep" or a list of variable names');
  if (input.secretEnv !== undefined) {
    out.secretEnv = envOf(input.secretEnv, "secretEnv");
    out.secretEnvNames = Object.keys(out.secretEnv).sort();
  }
  const health = healthOf(input.health, "health");
  if (health) out.health = health;
  if (health && "logLine" in health && out.logFile === "/dev/null") {
    // the original's own log is used when it had one; this is the fallback the check must be able to read
    invalid("logFile", "is needed with a logLine health check");
  }
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
  const needEnv = p.env !== "none" || p.secretEnvNames.length > 0;
  let argv: string[] | null;
  let cwd: string | null;
  let creds: Credentials | null;
  let environ: Record<string, string> | null = {};
  let bootId: string;
  let stdout: string | null;
  let stderr: string | null;
  try {
    [argv, cwd, creds, bootId, stdout, stderr, environ] = await Promise.all([
      readCmdline(host, pid),
      readLinkOrNull(host, `/proc/${pid}/cwd`),
      readCredentials(host, pid),
      readBootId(host),
      readOutput(host, pid, 1),
      readOutput(host, pid, 2),
      needEnv ? readEnviron(host, pid) : Promise.resolve({}),
    ]);
  } catch (error) {
    throw stepError(ctx, KIND, "observe", `cannot read /proc/${pid} to record how to restart it`, {
      expected: "its command line, working directory and (if asked) environment",
      found: (error as Error)?.message?.split("\n")[0],
      hint: "run the deploy as the process's user or as root",
      cause: error,
    });
  }
  // it exited while we looked: it is stopped
  if (argv === null || cwd === null || creds === null || environ === null || !(await readStat(host, pid))) {
    return { running: false };
  }
  if (argv.length === 0) {
    throw stepError(ctx, KIND, "observe", `pid ${pid} has an empty command line`, {
      expected: "the argv of a user process",
      found: "nothing (a kernel thread, or a Host that reads procfs files as empty)",
      hint: "point pidFile/match at the service itself",
    });
  }
  const state: Running = {
    running: true,
    pid,
    startTime: stat.startTime,
    bootId,
    argv,
    cwd,
    uid: creds.uid,
    gid: creds.gid,
    groups: creds.groups,
    stdout,
    stderr,
  };
  Object.assign(state, recordEnv(environ, p));
  if (p.health && !("logLine" in p.health)) {
    state.healthy = (await probeOnce(p.health, { host, cwd })).ok;
  }
  return state;
}

function recordEnv(
  environ: Record<string, string>,
  p: StopProcessParams,
): Pick<Running, "env" | "secretEnv" | "unrecorded"> {
  const out: Pick<Running, "env" | "secretEnv" | "unrecorded"> = {};
  const secret = new Set(p.secretEnvNames);
  if (secret.size) out.secretEnv = p.secretEnvNames.filter((n) => n in environ);
  if (p.env === "keep") {
    const env: Record<string, string> = {};
    const unrecorded: string[] = [];
    for (const name of Object.keys(environ).sort()) {
      if (secret.has(name)) continue;
      if (SECRET_NAME_RE.test(name)) unrecorded.push(name);
      else env[name] = environ[name]!;
    }
    out.env = env;
    if (unrecorded.length) out.unrecorded = unrecorded;
  } else if (Array.isArray(p.env)) {
    const env: Record<string, string | null> = {};
    for (const name of p.env) if (!secret.has(name)) env[name] = name in environ ? environ[name]! : null;
    out.env = env;
  }
  return out;
}

/** What undo restores: the same program, directory, user and environment (not the same pid). */
function sameProcess(a: StopProcessState, b: StopProcessState): boolean {
  if (!a.running || !b.running) return a.running === b.running;
  return sameLaunch(a, b) && a.uid === b.uid && a.gid === b.gid && a.healthy === b.healthy;
}

function sameLaunch(a: Running, b: Running): boolean {
  return (
    deepEqual(a.argv, b.argv) &&
    a.cwd === b.cwd &&
    deepEqual(a.env, b.env) &&
    deepEqual(a.secretEnv, b.secretEnv) &&
    deepEqual(a.unrecorded, b.unrecorded)
  );
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
  // recover or undo in a new process gets the state as the trail holds it: a secret value in the
  // command line or environment would be restored as "***"
  if (!sameLaunch(now, ctx.redact ? ctx.redact(before) : before)) {
    throw fail("the recorded command line or environment differs from the live process", {
      expected: "the state recorded by observe, byte for byte",
      found: "a value masked as a secret (it appears in the command line or an env variable)",
      hint: "pass secret variables with secretEnv instead of env; keep secrets out of command lines",
    });
  }
  if (now.unrecorded?.length) {
    throw fail('env: "keep" would not be able to restore every variable', {
      expected: "every variable recorded, or its value given in secretEnv",
      found: `variables that look secret: ${now.unrecorded.join(", ")}`,
      hint: `give their values in secretEnv (e.g. secretEnv: { ${now.unrecorded[0]}: process.env.${now.unrecorded[0]} }) or list the variables to keep in env: [...]`,
    });
  }
  const missing = p.secretEnvNames.filter((n) => p.secretEnv?.[n] === undefined);
  if (missing.length) {
    throw fail("secretEnv values are missing", {
      expected: "a value for every secretEnv name",
      found: `no value for ${missing.join(", ")} (secrets never reach the trail)`,
      hint: "run stop from the deploy file that holds the values",
    });
  }
  const unable = await cannotRestartAs(ctx.host, now);
  if (unable) throw fail("undo could not restart the process as its user", unable);
  const how = await terminate(ctx.host, now, { signal: p.signal, graceMs: p.graceMs, log: ctx.log });
  ctx.log(`pid ${now.pid} ${how === "killed" ? "killed with SIGKILL" : "stopped"}`);
  if (p.pidFile) await removePidFileIf(ctx.host, p.pidFile, now.pid);
}

/** Why the deploy user could not restart a process owned by someone else; undefined when it can. */
async function cannotRestartAs(
  host: Host,
  s: Running,
): Promise<{ expected: string; found: string; hint: string } | undefined> {
  const self = await readCredentials(host, "self");
  if (!self || (self.uid === s.uid && self.gid === s.gid)) return undefined;
  if (self.uid !== 0) {
    return {
      expected: `the deploy user to be uid ${s.uid} or root`,
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
 * Undo: starts the process again from the recorded argv, cwd, user and (per `env`) environment,
 * detached, writes the pid file and waits for `health`. Cannot restore: its pid, in-memory state, open
 * connections, variables not recorded by `env`, and secretEnv values in a new process (not in the trail).
 */
async function undo(ctx: StepContext, p: StopProcessParams, before: StopProcessState): Promise<void> {
  if (!before.running) return;
  const { host } = ctx;
  const fail = (message: string, details: Parameters<typeof stepError>[4]) =>
    stepError(ctx, KIND, "undo", message, details);
  const mask = masker(Object.values(p.secretEnv ?? {}));

  const now = await observe(ctx, p);
  if (now.running) {
    if (sameLaunch(now, before)) {
      ctx.log(`pid ${now.pid} already runs the recorded command: nothing to restart`);
      return;
    }
    throw fail("another process runs in its place", {
      expected: "no process, so the recorded one can be started again",
      found: mask(`pid ${now.pid}: ${showArgv(now.argv)}`),
      hint: "stop that process first; undo does not start a second copy",
    });
  }
  if (before.unrecorded?.length) {
    throw fail("the environment was not fully recorded", {
      expected: "every variable recorded",
      found: `not recorded: ${before.unrecorded.join(", ")}`,
      hint: `restart by hand: cd ${before.cwd} && ${showArgv(before.argv)}`,
    });
  }
  const secrets: string[] = [];
  for (const name of before.secretEnv ?? []) {
    const value = p.secretEnv?.[name];
    if (value === undefined) {
      throw fail(`the value of secret variable ${name} is not available`, {
        expected: `secretEnv.${name} in the step's params`,
        found: "nothing: secrets never reach the trail, so recover and undo <runId> do not have it",
        hint: `restart by hand with ${name} set: cd ${before.cwd} && ${showArgv(before.argv)}`,
      });
    }
    secrets.push(`${name}=${value}`);
  }

  let argv = before.argv;
  const env = Object.entries(before.env ?? {});
  const assign = [...env.filter(([, v]) => v !== null).map(([k, v]) => `${k}=${v}`), ...secrets];
  if (p.env === "keep") {
    argv = ["env", "-i", "--", ...assign, ...argv];
  } else {
    const unset = env.filter(([, v]) => v === null).flatMap(([k]) => ["-u", k]);
    if (unset.length || assign.length) argv = ["env", ...unset, "--", ...assign, ...argv];
  }
  if (argv !== before.argv && before.argv[0]!.includes("=")) {
    throw fail("cannot restart a program whose path holds '=' with an environment", {
      expected: "a program path without '='",
      found: before.argv[0],
      hint: `restart by hand: cd ${before.cwd} && ${showArgv(before.argv)}`,
    });
  }
  const self = await readCredentials(host, "self");
  if (self && (self.uid !== before.uid || self.gid !== before.gid)) {
    const groups = before.groups.length ? `--groups=${before.groups.join(",")}` : "--clear-groups";
    argv = ["setpriv", `--reuid=${before.uid}`, `--regid=${before.gid}`, groups, "--", ...argv];
  }

  const stdout = before.stdout ?? p.logFile;
  const stderr = before.stderr ?? stdout;
  const logOffset = await sizeOf(host, stdout);
  let pidFile = p.pidFile;
  if (!pidFile) {
    // match mode: the launcher still needs a file to hand the pid back through
    await host.mkdir(host.stateDir, { recursive: true });
    pidFile = `${host.stateDir}/process-stop-${randomBytes(6).toString("hex")}.pid`;
  }
  let pid: number;
  try {
    pid = await launch(host, { argv, cwd: before.cwd, stdout, stderr, pidFile }, ctx.signal);
  } finally {
    if (!p.pidFile) await host.rm(pidFile, { force: true });
  }
  ctx.log(`restarted as pid ${pid}: ${mask(showArgv(before.argv))}`);
  const [stat, bootId] = await Promise.all([readStat(host, pid), readBootId(host)]);
  const id: Identity | null = stat ? { pid, startTime: stat.startTime, bootId } : null;
  const alive = async () => id !== null && (await findIdentity(host, id)) !== null;
  const waited = p.health
    ? await waitHealthy(p.health, {
        host,
        signal: ctx.signal,
        alive,
        cwd: before.cwd,
        logFile: stdout,
        logOffset,
        log: ctx.log,
      })
    : (await waitUptime(p.minUptimeMs, { alive, signal: ctx.signal }))
      ? ({ ok: true } as const)
      : ({ ok: false, reason: "exited", detail: "" } as const);
  if (waited.ok) return;
  if (waited.reason === "exited" && p.pidFile) await removePidFileIf(host, p.pidFile, pid);
  throw fail(
    waited.reason === "exited" ? "the restarted process exited" : "the restarted process is not healthy",
    {
      expected: p.health ? `healthy: ${describeHealth(p.health)}` : `running for ${p.minUptimeMs} ms`,
      found: `${waited.detail ? `${mask(waited.detail)}; ` : ""}last output:\n${await logTail(host, stdout, logOffset, mask)}`,
      hint: `read ${stdout}; the recorded command was: cd ${before.cwd} && ${mask(showArgv(before.argv))}`,
    },
  );
}

/**
 * Stops a running process (by pid file or command-line match): the signal, `graceMs`, then SIGKILL.
 * Observe records what is needed to start it again exactly as it was; undo does that.
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
});

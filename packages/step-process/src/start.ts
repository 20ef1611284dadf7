import { dirname } from "node:path";
import { defineStep, type Host, type StepContext } from "@atomkit/core";
import {
  describeHealth,
  type HealthCheck,
  healthOf,
  type NormalizedHealth,
  waitHealthy,
  waitUptime,
} from "./_health";
import { launch, logTail, requireDir, sizeOf } from "./_launch";
import {
  findIdentity,
  type Identity,
  readBootId,
  readCmdline,
  readPidFile,
  readStat,
  removePidFileIf,
  sameIdentity,
  terminate,
} from "./_proc";
import {
  absolutePath,
  argvOf,
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

const KIND = "process.start";

export interface StartProcessOptions {
  /** The program and its arguments as an argv, e.g. `["node", "server.js"]`; never a shell string. **Required.** */
  command: string[];
  /** Absolute working directory. Default `/`. */
  cwd?: string;
  /**
   * Added to the host's environment. Values reach the process's argv (through `env`) for an instant
   * at start: mark secret ones with the step option `secret: ["env.TOKEN"]` to keep them out of the trail.
   */
  env?: Record<string, string>;
  /** Absolute path of the pid file this step writes (atomically) and reads back. **Required.** */
  pidFile: string;
  /** Absolute path the process's stdout and stderr are appended to. Default: `pidFile` with `.log` for `.pid`. */
  logFile?: string;
  /** Waited for after the start; a timeout fails the step (rollback stops the process). Default: none. */
  health?: HealthCheck;
  /** Without `health`: the process must stay up this long to count as started. Default 500. */
  minUptimeMs?: number;
  /** Signal undo sends to stop the process it started. Default `TERM`. */
  stopSignal?: string;
  /** How long undo waits after `stopSignal` before SIGKILL. Default 10 000. */
  graceMs?: number;
}

/** Validated params, defaults filled in: what the trail records (minus secret paths). */
export interface StartProcessParams {
  command: string[];
  cwd: string;
  env: Record<string, string>;
  pidFile: string;
  logFile: string;
  health?: NormalizedHealth;
  minUptimeMs: number;
  stopSignal: string;
  graceMs: number;
}

/** What observe records: whether a process runs from the pid file, and exactly which one. */
export type StartProcessState =
  | { running: false }
  | {
      running: true;
      pid: number;
      /** Clock ticks after boot (field 22 of /proc/<pid>/stat): with `bootId`, tells a recycled pid. */
      startTime: number;
      bootId: string;
      argv: string[];
    };

function params(input: StartProcessOptions): StartProcessParams {
  if (!isRecord(input)) invalid("", "must be an object { command, pidFile, … }");
  onlyKeys(
    input,
    ["command", "cwd", "env", "pidFile", "logFile", "health", "minUptimeMs", "stopSignal", "graceMs"],
    "",
  );
  const command = argvOf(input.command, "command");
  const env = input.env === undefined ? {} : envOf(input.env, "env");
  // `env NAME=value prog`: a program whose name holds "=" would be read as one more assignment
  if (Object.keys(env).length && command[0]!.includes("=")) {
    invalid("command.0", 'must not contain "=" when env is given');
  }
  const pidFile = absolutePath(input.pidFile, "pidFile");
  const out: StartProcessParams = {
    command,
    cwd: input.cwd === undefined ? "/" : absolutePath(input.cwd, "cwd"),
    env,
    pidFile,
    logFile:
      input.logFile === undefined
        ? `${pidFile.replace(/\.pid$/, "")}.log`
        : absolutePath(input.logFile, "logFile"),
    minUptimeMs: msOf(input.minUptimeMs, "minUptimeMs", 500),
    stopSignal: signalOf(input.stopSignal, "stopSignal", "TERM"),
    graceMs: msOf(input.graceMs, "graceMs", 10_000),
  };
  const health = healthOf(input.health, "health");
  if (health) out.health = health;
  return out;
}

async function observe(
  host: Host,
  p: StartProcessParams,
  log: (m: string) => void,
): Promise<StartProcessState> {
  const found = await readPidFile(host, p.pidFile);
  if (found.status === "recycled") {
    log(
      `pid file ${p.pidFile} names pid ${found.pid}, which started after the file was written: a reused pid, ignored`,
    );
  }
  if (found.status !== "running") return { running: false };
  const [argv, bootId] = await Promise.all([readCmdline(host, found.pid), readBootId(host)]);
  if (argv === null) return { running: false };
  return { running: true, pid: found.pid, startTime: found.stat.startTime, bootId, argv };
}

async function apply(ctx: StepContext, p: StartProcessParams, before: StartProcessState): Promise<void> {
  const { host } = ctx;
  const mask = masker(Object.values(p.env));
  const fail = (message: string, details: Parameters<typeof stepError>[4]) =>
    stepError(ctx, KIND, "apply", message, details);

  if (before.running) {
    const now = await observe(host, p, ctx.log);
    if (now.running && JSON.stringify(now.argv) === JSON.stringify(p.command)) {
      ctx.log(`pid ${now.pid} already runs this command: nothing to start`);
      return;
    }
    if (now.running) {
      throw fail(`pid file ${p.pidFile} names a running process`, {
        expected: "no process running from this pid file",
        found: mask(`pid ${now.pid}: ${showArgv(now.argv)}`),
        hint: "stop it first (stopProcess({ pidFile }) as an earlier step), or give this process its own pid file",
      });
    }
  }

  const problems = (
    await Promise.all([
      requireDir(host, p.cwd, "working directory"),
      requireDir(host, dirname(p.pidFile), "pid file directory"),
      requireDir(host, dirname(p.logFile), "log directory"),
    ])
  ).filter(Boolean);
  if (problems.length) {
    throw fail("cannot start the process", {
      expected: "existing directories for cwd, pidFile and logFile",
      found: problems.join("; "),
      hint: "create them in an earlier step (e.g. fs.mkdir) or fix the paths",
    });
  }

  const logOffset = await sizeOf(host, p.logFile);
  const env = Object.entries(p.env).map(([k, v]) => `${k}=${v}`);
  const argv = env.length ? ["env", "--", ...env, ...p.command] : p.command;
  const pid = await launch(
    host,
    { argv, cwd: p.cwd, stdout: p.logFile, stderr: p.logFile, pidFile: p.pidFile },
    ctx.signal,
  );
  const [stat, bootId] = await Promise.all([readStat(host, pid), readBootId(host)]);
  const id: Identity | null = stat ? { pid, startTime: stat.startTime, bootId } : null;
  ctx.log(`started pid ${pid}: ${mask(showArgv(p.command))}`);
  const alive = async () => id !== null && (await findIdentity(host, id)) !== null;

  const waited = p.health
    ? await waitHealthy(p.health, {
        host,
        signal: ctx.signal,
        alive,
        cwd: p.cwd,
        logFile: p.logFile,
        logOffset,
        log: ctx.log,
      })
    : (await waitUptime(p.minUptimeMs, { alive, signal: ctx.signal }))
      ? ({ ok: true } as const)
      : ({ ok: false, reason: "exited", detail: "" } as const);
  if (waited.ok) {
    if (p.health) ctx.log(`pid ${pid} is healthy`);
    return;
  }
  if (waited.reason === "exited") {
    await removePidFileIf(host, p.pidFile, pid);
    throw fail(
      p.health ? "the process exited before it became healthy" : "the process exited right after it started",
      {
        expected: p.health ? `healthy: ${describeHealth(p.health)}` : `running for ${p.minUptimeMs} ms`,
        found: `pid ${pid} exited; last output:\n${await logTail(host, p.logFile, logOffset, mask)}`,
        hint: `read ${p.logFile}, or run the command by hand in ${p.cwd}`,
      },
    );
  }
  // left running on purpose: check sees it, and rollback stops exactly this pid and start time
  throw fail(`the process did not become healthy within ${p.health?.timeoutMs} ms`, {
    expected: `healthy: ${p.health ? describeHealth(p.health) : ""}`,
    found: `${mask(waited.detail)}; pid ${pid} still runs; last output:\n${await logTail(host, p.logFile, logOffset, mask)}`,
    hint: "check the port/path of the health check and the log; raise health.timeoutMs if it only starts slowly",
  });
}

/**
 * Undo: stops the process this step started, and only that one (pid and start time must match, so a
 * recycled pid is never signalled), then removes its pid file. Cannot restore: the lines it appended to
 * the log, and a stale pid file that was there before the start.
 */
async function undo(
  ctx: StepContext,
  p: StartProcessParams,
  before: StartProcessState,
  after: StartProcessState,
): Promise<void> {
  if (!after.running) return;
  if (before.running && sameIdentity(before, after)) return;
  const how = await terminate(ctx.host, after, { signal: p.stopSignal, graceMs: p.graceMs, log: ctx.log });
  if (how !== "gone") ctx.log(`pid ${after.pid} ${how}`);
  await removePidFileIf(ctx.host, p.pidFile, after.pid);
}

/**
 * Starts a command detached (new session, output appended to a log file), writes its pid file and
 * waits for its health check. Undo stops exactly the process it started.
 */
export const startProcess = defineStep({
  kind: KIND,
  package: "@atomkit/step-process",
  params,
  describe: (p) => `start ${showArgv(p.command, 80)} (pid file ${p.pidFile})`,
  observe: (ctx, p) => observe(ctx.host, p, ctx.log),
  apply,
  undo,
  same: (a, b) => (a.running && b.running ? sameIdentity(a, b) : a.running === b.running),
});

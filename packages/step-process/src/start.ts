import { dirname } from "node:path";
import { defineStep, type Host, type StepContext } from "@atomkit/core";
import {
  absolutePath,
  argv,
  checkFields,
  env,
  fail,
  optional,
  ParamsFieldError,
  show,
} from "@atomkit/core/kit";
import { cwdOf, msOf, signalOf } from "./_checks";
import { healthOf, type NormalizedHealth, type ProcessHealthCheck } from "./_health";
import { realDir, requireDir } from "./_launch";
import { readBootId, readCredentials, readPidFile, removePidFileIf } from "./_proc";
import { readRecord, recordPath, removeRecordIf } from "./_record";
import { relaunch } from "./_relaunch";
import { terminate } from "./_signal";
import {
  checkState,
  credsOf,
  type Launch,
  launchDiff,
  type ProcessState,
  readProcLaunch,
  sameLaunch,
} from "./_state";
import { masker, showArgv } from "./_text";

const KIND = "process.start";

/** The options of `process.start`: the command, its directory and environment, pid and log files, and when it counts as started. */
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
  health?: ProcessHealthCheck;
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

/**
 * What observe records: whether a process runs from the pid file, and its launch (command, the release
 * directory it started in, user, environment with secret values left out). `same()` compares the launch,
 * never the pid: a restart of the identical launch is the same state. See `ProcessState`.
 */
export type StartProcessState = ProcessState;

function params(input: StartProcessOptions): StartProcessParams {
  const o = checkFields(input, {
    command: argv,
    cwd: (v, p) => (v === undefined ? "/" : cwdOf(v, p)),
    env: (v, p) => (v === undefined ? {} : env(v, p)),
    pidFile: absolutePath,
    logFile: optional(absolutePath),
    health: healthOf,
    minUptimeMs: (v, p) => msOf(v, p, 500),
    stopSignal: (v, p) => signalOf(v, p, "TERM"),
    graceMs: (v, p) => msOf(v, p, 10_000),
  });
  // `env NAME=value prog`: a program whose name holds "=" would be read as one more assignment
  if (Object.keys(o.env).length && o.command[0]!.includes("=")) {
    throw new ParamsFieldError(
      "command.0",
      `expected a program name without "=" when env is given, found ${show(o.command[0])}`,
    );
  }
  const out: StartProcessParams = {
    command: o.command,
    cwd: o.cwd,
    env: o.env,
    pidFile: o.pidFile,
    logFile: o.logFile ?? `${o.pidFile.replace(/\.pid$/, "")}.log`,
    minUptimeMs: o.minUptimeMs,
    stopSignal: o.stopSignal,
    graceMs: o.graceMs,
  };
  if (o.health) out.health = o.health;
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
  const ev = { pid: found.pid, startTime: found.stat.startTime, bootId: await readBootId(host) };
  const recorded = await readRecord(host, p.pidFile, ev);
  if (recorded)
    return { running: true, ...ev, launch: recorded.launch, recorded: true, output: recorded.output };
  // not started by Atomkit (or its record is gone): what /proc shows is all there is
  const proc = await readProcLaunch(host, found.pid);
  if (!proc) return { running: false };
  return { running: true, ...ev, launch: proc.launch, recorded: false, output: proc.output };
}

/** The launch this step's params ask for, as a record would hold it once started. */
async function wanted(ctx: StepContext, p: StartProcessParams, dir: string): Promise<Launch> {
  // env values the run holds as secrets are set at start and never recorded: only their names
  const masked = ctx.redact(p.env);
  const env: Record<string, string> = {};
  const secretEnv: string[] = [];
  for (const [name, value] of Object.entries(p.env)) {
    if (masked[name] !== value) secretEnv.push(name);
    else env[name] = value;
  }
  const self = await readCredentials(ctx.host, "self");
  return {
    argv: p.command,
    cwd: p.cwd,
    dir,
    ...(self ? credsOf(self) : { uid: 0, gid: 0, groups: [] }),
    env,
    secretEnv: secretEnv.sort(),
    clearEnv: false,
  };
}

async function apply(ctx: StepContext, p: StartProcessParams, before: StartProcessState): Promise<void> {
  const { host } = ctx;
  const mask = masker(Object.values(p.env));

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
  const dir = await realDir(host, p.cwd);
  if (!dir) {
    throw fail(`cannot enter the working directory ${p.cwd}`, {
      expected: "a directory the deploy user can enter",
      found: "cd failed",
      hint: "check its permissions, or what the symlink points at",
    });
  }
  const want = await wanted(ctx, p, dir);
  if (before.running) {
    const now = await observe(host, p, ctx.log);
    // the whole launch, never the command alone: the same argv from the old release is not this start
    if (now.running && now.recorded && sameLaunch(now.launch, want)) {
      ctx.log(`pid ${now.pid} already runs this launch (in ${dir}): nothing to start`);
      return;
    }
    if (now.running) {
      throw fail(`pid file ${p.pidFile} names a running process of another launch`, {
        expected: `no process running from this pid file, or this very launch (in ${dir})`,
        found: mask(
          `pid ${now.pid}: ${showArgv(now.launch.argv)} in ${now.launch.dir}${
            now.recorded ? ` (differs in ${launchDiff(now.launch, want)})` : " (not started by Atomkit)"
          }`,
        ),
        hint: "stop it first (stopProcess({ pidFile }) as an earlier step of the atom), or give this process its own pid file",
      });
    }
  }
  const spec = {
    launch: want,
    secrets: Object.fromEntries(want.secretEnv.map((n) => [n, p.env[n]!])),
    output: { stdout: p.logFile, stderr: p.logFile },
    pidFile: p.pidFile,
    record: true,
    health: p.health,
    minUptimeMs: p.minUptimeMs,
    mask,
  };
  await relaunch(ctx, spec, "the process");
}

/**
 * Undo: stops what runs from the pid file when it is the launch this step started (whatever its pid: a
 * rollback of a later run may have restarted it), then removes the pid file and the launch record.
 * Cannot restore: the lines it appended to the log, and a stale pid file that was there before the start.
 */
async function undo(
  ctx: StepContext,
  p: StartProcessParams,
  before: StartProcessState,
  after: StartProcessState,
): Promise<void> {
  if (!after.running) return;
  if (before.running && sameLaunch(before.launch, after.launch)) return; // it ran already; nothing was started
  const now = await observe(ctx.host, p, ctx.log);
  if (!now.running) return;
  if (!sameLaunch(now.launch, after.launch)) {
    throw fail("another launch runs from the pid file; it was left alone", {
      expected: `the launch this step started (${showArgv(after.launch.argv)} in ${after.launch.dir})`,
      found: `pid ${now.pid}: ${showArgv(now.launch.argv)} in ${now.launch.dir}`,
      hint: "someone restarted it differently since; stop it by hand if it must go",
    });
  }
  const how = await terminate(ctx.host, now, { signal: p.stopSignal, graceMs: p.graceMs, log: ctx.log });
  if (how !== "gone") ctx.log(`pid ${now.pid} ${how}`);
  await removePidFileIf(ctx.host, p.pidFile, now.pid);
  await removeRecordIf(ctx.host, p.pidFile, now.pid);
}

/**
 * Starts a command detached (new session, output appended to a log file), writes its pid file and a
 * launch record beside it, and waits for its health check. Undo stops the launch it started.
 */
export const startProcess = defineStep({
  kind: KIND,
  package: "@atomkit/step-process",
  params,
  describe: (p) => `start ${showArgv(p.command, 80)} (pid file ${p.pidFile})`,
  observe: (ctx, p) => observe(ctx.host, p, ctx.log),
  apply,
  undo,
  same: (a, b) => (a.running && b.running ? sameLaunch(a.launch, b.launch) : a.running === b.running),
  state: (value: unknown) => checkState(value),
  owns: (p) => [p.pidFile, recordPath(p.pidFile), p.logFile],
});

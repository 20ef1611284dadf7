import { defineStep, type StepContext } from "@atomkit/core";
import { fail } from "@atomkit/core/kit";
import type { NormalizedHealth, ProcessHealthCheck } from "./_health";
import { removePidFileIf, sameIdentity } from "./_proc";
import { recordPath, removeRecordIf } from "./_record";
import { cannotRestartAs, relaunch, scratchPidFile } from "./_relaunch";
import { terminate } from "./_signal";
import { snapshot } from "./_snapshot";
import { checkState, type ProcessState, sameLaunch } from "./_state";
import { KIND, stopParams } from "./_stop-params";
import { masker, showArgv } from "./_text";

/** The options of `process.stop`: which process (pid file or match), how to stop it, and how an undo starts it again. */
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
  health?: ProcessHealthCheck;
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

/** What undo restores: the same launch (not the same pid), answering its health probe as it did. */
function sameProcess(a: StopProcessState, b: StopProcessState): boolean {
  if (!a.running || !b.running) return a.running === b.running;
  return sameLaunch(a.launch, b.launch) && a.healthy === b.healthy;
}

// --- Apply ---

async function apply(ctx: StepContext, p: StopProcessParams, before: StopProcessState): Promise<void> {
  if (!before.running) return;
  const now = await snapshot(ctx, p);
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

// --- Undo ---

/**
 * Undo: starts the process again from its recorded launch (command, the directory it was started in,
 * user, environment; secret values from `secretEnv`), detached, writes the pid file and launch record
 * and waits for `health`. Cannot restore: its pid, in-memory state and open connections.
 */
async function undo(ctx: StepContext, p: StopProcessParams, before: StopProcessState): Promise<void> {
  if (!before.running) return;
  const mask = masker(Object.values(p.secretEnv ?? {}));
  const { launch } = before;
  const now = await snapshot(ctx, p);
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
    const spec = {
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
    };
    await relaunch(ctx, spec, "the restarted process");
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
  params: stopParams,
  secret: ["secretEnv"],
  describe: (p) =>
    `stop ${p.pidFile ? `the process in ${p.pidFile}` : `the process matching /${p.match}/`} (SIG${p.signal}, then SIGKILL after ${p.graceMs} ms)`,
  observe: snapshot,
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

// Starting a recorded launch: process.start's apply starts the launch its params ask for, and
// process.stop's undo starts again the launch it observed. Both go through here, so a restart is the
// same start as the first one (environment, user, detached session, launch record, health wait).
import { posix } from "node:path";
import type { Host, StepContext } from "@atomkit/core";
import { fail, tempBeside } from "@atomkit/core/kit";
import { describeHealth, type NormalizedHealth, waitHealthy, waitUptime } from "./_health";
import { launch, logTail, sizeOf } from "./_launch";
import { findIdentity, type Identity, readBootId, readCredentials, readStat, removePidFileIf } from "./_proc";
import { removeRecordIf, writeRecord } from "./_record";
import type { Launch, Output, Running } from "./_state";
import { showArgv } from "./_text";

export interface StartSpec {
  launch: Launch;
  /** Values of `launch.secretEnv`, which no record holds. */
  secrets: Record<string, string>;
  output: Output;
  /** Where the launcher hands the pid back; written with a launch record beside it when `record`. */
  pidFile: string;
  record: boolean;
  health?: NormalizedHealth | undefined;
  minUptimeMs: number;
  mask: (text: string) => string;
}

export type StartOutcome =
  | { ok: true; pid: number; dir: string }
  | { ok: false; pid: number; exited: boolean; expected: string; found: string; hint: string };

/**
 * Starts a launch detached, in the directory it names (already resolved: the release it ran from, not
 * whatever a `current` link points at now), as its user, with its environment; records it beside the
 * pid file; waits for health (or `minUptimeMs`). A process that exits is cleaned up after (pid file and
 * record); one that is up but unhealthy is left running, for check to see and rollback to stop.
 */
async function startLaunch(ctx: StepContext, spec: StartSpec): Promise<StartOutcome> {
  const { host } = ctx;
  const { launch: l } = spec;
  const argv = await wrapped(host, l, spec.secrets);
  const stdout = spec.output.stdout ?? "/dev/null";
  const stderr = spec.output.stderr ?? stdout;
  const logOffset = await sizeOf(host, stdout);
  const { pid, dir } = await launch(
    host,
    { argv, cwd: l.dir, stdout, stderr, pidFile: spec.pidFile },
    ctx.signal,
  );
  ctx.log(`started pid ${pid} in ${dir}: ${spec.mask(showArgv(l.argv))}`);
  const stat = await readStat(host, pid);
  const id: Identity | null = stat
    ? { pid, startTime: stat.startTime, bootId: await readBootId(host) }
    : null;
  if (spec.record && id) {
    await writeRecord(host, spec.pidFile, { pid, startTime: id.startTime }, { ...l, dir }, spec.output);
  }
  const alive = async () => id !== null && (await findIdentity(host, id)) !== null;
  const waited = spec.health
    ? await waitHealthy(spec.health, {
        host,
        signal: ctx.signal,
        alive,
        cwd: dir,
        logFile: stdout,
        logOffset,
        log: ctx.log,
      })
    : (await waitUptime(spec.minUptimeMs, { alive, signal: ctx.signal }))
      ? ({ ok: true } as const)
      : ({ ok: false, reason: "exited", detail: "" } as const);
  if (waited.ok) {
    if (spec.health) ctx.log(`pid ${pid} is healthy`);
    return { ok: true, pid, dir };
  }
  const exited = waited.reason === "exited";
  if (exited) {
    await removePidFileIf(host, spec.pidFile, pid);
    if (spec.record) await removeRecordIf(host, spec.pidFile, pid);
  }
  const tail = await logTail(host, stdout, logOffset, spec.mask);
  return {
    ok: false,
    pid,
    exited,
    expected: spec.health ? `healthy: ${describeHealth(spec.health)}` : `running for ${spec.minUptimeMs} ms`,
    found: exited
      ? `pid ${pid} exited; last output:\n${tail}`
      : `${spec.mask(waited.detail)}; pid ${pid} still runs; last output:\n${tail}`,
    hint: `read ${stdout}; the launch was: cd ${l.dir} && ${spec.mask(showArgv(l.argv))}`,
  };
}

/** The argv that sets the launch's environment and user: `env`, then `setpriv` when the user differs. */
async function wrapped(host: Host, l: Launch, secrets: Record<string, string>): Promise<string[]> {
  const entries = Object.entries(l.env);
  const assign = [
    ...entries.filter(([, v]) => v !== null).map(([k, v]) => `${k}=${v}`),
    ...l.secretEnv.map((name) => `${name}=${secrets[name]}`),
  ];
  const unset = entries.filter(([, v]) => v === null).flatMap(([k]) => ["-u", k]);
  let argv = l.argv;
  if (l.clearEnv) argv = ["env", "-i", "--", ...assign, ...argv];
  else if (unset.length || assign.length) argv = ["env", ...unset, "--", ...assign, ...argv];
  const self = await readCredentials(host, "self");
  if (self && (self.uid !== l.uid || self.gid !== l.gid)) {
    const groups = l.groups.length ? `--groups=${l.groups.join(",")}` : "--clear-groups";
    argv = ["setpriv", `--reuid=${l.uid}`, `--regid=${l.gid}`, groups, "--", ...argv];
  }
  return argv;
}

/** A pid file for a launcher that has none of its own (process.stop by `match`), under the state dir. */
export async function scratchPidFile(host: Host): Promise<string> {
  await host.mkdir(host.stateDir, { recursive: true });
  return tempBeside(posix.join(host.stateDir, "process.pid"));
}

/**
 * Starts the launch and waits for it (`startLaunch`); throws `fail(...)` when it exited or did not
 * become healthy. `what` names it in the message: "the process", "the restarted process".
 */
export async function relaunch(ctx: StepContext, spec: StartSpec, what: string): Promise<void> {
  const started = await startLaunch(ctx, spec);
  if (started.ok) return;
  // left running when it is up but unhealthy: check sees it, and rollback stops exactly it
  throw fail(
    started.exited
      ? spec.health
        ? `${what} exited before it became healthy`
        : `${what} exited right after it started`
      : `${what} did not become healthy within ${spec.health?.timeoutMs} ms`,
    { expected: started.expected, found: started.found, hint: started.hint },
  );
}

/** Why the deploy user could not restart a process owned by someone else; undefined when it can. */
export async function cannotRestartAs(
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

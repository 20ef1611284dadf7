// Stopping a process: a signal to it (or its group), a wait, then SIGKILL. Always by identity (pid,
// start time, boot), so a pid recycled meanwhile is never signalled.
import { type Host, HostError } from "@atomkit/core";
import { sleep } from "@atomkit/core/kit";
import { findIdentity, type Identity, type ProcStat, readStat } from "./_proc";

/**
 * Sends `signal` with the host's `kill`. A session leader (what a detached start makes) gets it on its
 * whole process group, so its children stop with it; no unrelated process can be in that group.
 */
export async function sendSignal(host: Host, stat: ProcStat, signal: string): Promise<void> {
  const group = stat.session === stat.pid && stat.pgrp === stat.pid;
  const target = group ? `-${stat.pid}` : String(stat.pid);
  const r = await host.exec(["kill", "-s", signal, "--", target], { reject: false });
  if (r.code !== 0 && (await readStat(host, stat.pid))) {
    const stderr = r.stderr.trim();
    throw new HostError(
      /not permitted/i.test(stderr) ? "EACCES" : "EXIT",
      `kill -s ${signal} ${target} failed: ${stderr}`,
      {
        host: host.name,
        ...(r.code !== null ? { exitCode: r.code } : {}),
        stderr,
        expected: "the signal delivered",
        found: `exit code ${r.code}`,
        hint: "the deploy user may lack permission to signal this process: run as its owner or root",
      },
    );
  }
}

/** Polls until no process has this identity any more; false when `ms` passed first. */
export async function waitGone(host: Host, id: Identity, ms: number, signal?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + ms;
  let pause = 20;
  for (;;) {
    if (!(await findIdentity(host, id))) return true;
    const left = deadline - Date.now();
    if (left <= 0 || signal?.aborted) return false;
    await sleep(Math.min(pause, left), signal);
    pause = Math.min(pause * 2, 200);
  }
}

/**
 * Stops the process with this identity: `signal`, up to `graceMs` for it to exit, then SIGKILL.
 * Returns how it ended; throws when it outlives SIGKILL. A recycled pid is never signalled.
 */
export async function terminate(
  host: Host,
  id: Identity,
  options: { signal: string; graceMs: number; log?: (message: string) => void },
): Promise<"gone" | "stopped" | "killed"> {
  const stat = await findIdentity(host, id);
  if (!stat) return "gone";
  await sendSignal(host, stat, options.signal);
  if (await waitGone(host, id, options.graceMs)) return "stopped";
  // identity is checked again: between the wait and the KILL the pid may have been recycled
  const still = await findIdentity(host, id);
  if (!still) return "stopped";
  options.log?.(`pid ${id.pid} still runs ${options.graceMs} ms after SIG${options.signal}: sending SIGKILL`);
  if (options.signal !== "KILL") await sendSignal(host, still, "KILL");
  if (await waitGone(host, id, 5_000)) return "killed";
  throw new HostError("OTHER", `pid ${id.pid} is still running after SIGKILL`, {
    host: host.name,
    expected: "the process gone within 5 s of SIGKILL",
    found: "it still runs (uninterruptible sleep on a hung disk or NFS mount?)",
    hint: "look at `cat /proc/<pid>/stack` and the process's state on the host",
  });
}

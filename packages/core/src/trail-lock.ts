import { hostname } from "node:os";
import { pidAlive } from "./_utils";
import { LockedError } from "./errors";
import type { Host, Lease } from "./host";
import { readLease } from "./lease";
import { type LockSettings, takeLock } from "./run";
import type { LockRecord, RunView } from "./trail";

// Recover and undo act on a run only once they know it is dead, and take the host lock the way the run
// did: under the lock name the run recorded (never one given now), breaking the run's own stale lease
// (its recorded token) but no one else's.

/** The lease as a run records it. */
export function lockRecord(lease: Lease | undefined): LockRecord | undefined {
  return lease ? { name: lease.info.name, token: lease.info.token, owner: lease.info.owner } : undefined;
}

/** Throws when the run's process may still be running: its recorded lease is fresh, or its pid lives here. */
export async function refuseLive(host: Host, view: RunView): Promise<void> {
  const { lock, pid, machine, runId } = view.run;
  if (lock) {
    const lease = await readLease(host, lock.name);
    if (lease && lease.token === lock.token && !lease.stale) {
      throw new LockedError(
        `run ${runId} is still running: it holds lock "${lock.name}" on host "${host.name}" (last heartbeat ${lease.heartbeatAt})`,
        lease,
        false,
        {
          host: host.name,
          expected: "a dead run (its lease stale or gone)",
          found: `a fresh lease of ${lease.owner} (pid ${lease.pid} on ${lease.machine})`,
          hint: `let it finish; if its process died on another machine, its lease turns stale after ${Math.round(lease.ttlMs / 1000)} s: retry then`,
        },
      );
    }
    return;
  }
  // a run without a lock: only a pid on this very machine can tell
  if (machine === hostname() && pid !== process.pid && pidAlive(pid)) {
    const holder = { owner: "unknown", pid, machine, startedAt: view.run.at, heartbeatAt: view.run.at };
    throw new LockedError(
      `run ${runId} may still be running: pid ${pid} lives on this machine`,
      holder,
      false,
      {
        host: host.name,
        hint: `stop that process first (it ran without a lock, so nothing else tells), then retry`,
      },
    );
  }
}

/** Takes the lock the run used; the run's own stale lease (same token) is taken over. */
export async function lockLikeRun(
  host: Host,
  lock: LockSettings | false | undefined,
  view: RunView,
  note: string,
): Promise<Lease | undefined> {
  if (lock === false) return undefined;
  const settings: LockSettings = { ...(lock ?? {}), ...(view.run.lock ? { name: view.run.lock.name } : {}) };
  try {
    return await takeLock(host, settings, note);
  } catch (error) {
    if (!(error instanceof LockedError)) throw error;
    const token = (error.holder as { token?: string }).token;
    const own = view.run.lock ? token === view.run.lock.token : false;
    if (!(own && error.stale)) throw error;
    return takeLock(host, { ...settings, breakStale: true }, note);
  }
}

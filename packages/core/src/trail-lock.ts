import { hostname, userInfo } from "node:os";
import { pidAlive } from "./_utils";
import { LockedError } from "./errors";
import type { Host, Lease } from "./host";
import { readLease } from "./lease";
import { type LockSettings, takeLock } from "./run";
import { hostLockName, type LockRecord, type RunView, type StoreLock, type TrailStore } from "./trail";

/**
 * Takes the store locks of `hosts` (all or none) when the store coordinates controllers
 * (`TrailStore.lock`, e.g. PostgreSQL); a store without locks gives none. `held`: the caller holds
 * them already (a fleet takes all its hosts at once), nothing is taken.
 */
export async function takeStoreLock(
  store: TrailStore | undefined,
  hosts: readonly string[],
  note: string,
  options: { held?: boolean | undefined; owner?: string | undefined } = {},
): Promise<StoreLock | undefined> {
  if (!store?.lock || options.held || !hosts.length) return undefined;
  return store.lock(hosts.map(hostLockName), { owner: options.owner ?? defaultOwner(), note });
}

/** The store lock name recorded with a host run, when the store has locks. */
export function storeLockOf(store: TrailStore | undefined, host: string): string | undefined {
  return store?.lock ? hostLockName(host) : undefined;
}

export function defaultOwner(): string {
  let user = "unknown";
  try {
    user = userInfo().username;
  } catch {}
  return `${user}@${hostname()}`;
}

// Recover and undo act on a run only once they know it is dead, and take the host lock the way the run
// did: under the lock name the run recorded (never one given now), breaking the run's own stale lease
// (its recorded token) but no one else's.

/** The lease as a run records it. */
export function lockRecord(lease: Lease | undefined): LockRecord | undefined {
  return lease ? { name: lease.info.name, token: lease.info.token, owner: lease.info.owner } : undefined;
}

/**
 * Throws when the run's process may still be running: its recorded lease is fresh, or its pid lives here.
 * `ownerGone`: the caller holds the store lock the run's controller held, so that controller is gone
 * (its session ended) whatever its lease's heartbeat says.
 */
export async function refuseLive(host: Host, view: RunView, ownerGone = false): Promise<void> {
  const { lock, pid, machine, runId } = view.run;
  if (ownerGone) return;
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
  ownerGone = false,
): Promise<Lease | undefined> {
  if (lock === false) return undefined;
  const settings: LockSettings = { ...(lock ?? {}), ...(view.run.lock ? { name: view.run.lock.name } : {}) };
  try {
    return await takeLock(host, settings, note);
  } catch (error) {
    if (!(error instanceof LockedError)) throw error;
    const token = (error.holder as { token?: string }).token;
    const own = view.run.lock ? token === view.run.lock.token : false;
    if (!(own && (error.stale || ownerGone))) throw error;
    return takeLock(
      host,
      { ...settings, ...(ownerGone ? { breakToken: view.run.lock!.token } : { breakStale: true }) },
      note,
    );
  }
}

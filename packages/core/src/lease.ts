import { randomBytes } from "node:crypto";
import { readFileSync, readlinkSync } from "node:fs";
import { hostname } from "node:os";
import { pidAlive, sleep } from "./_utils";
import { AtomError, HostError, isNotFound, LockedError } from "./errors";
import type { Host, Lease, LeaseInfo, LockOptions } from "./host";

const LOCK_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/**
 * Where a holder's heartbeat goes: a file of its own beside the lease, never the lease itself. A
 * heartbeat that rewrote the lease could put back a lease that was broken between its read and its
 * write (two holders); a beat file can only ever speak for its own token.
 */
const beatPath = (path: string, token: string) => `${path}.beat-${token}`;

/** Path of a named lease on a host. */
export function leasePath(host: Host, name: string): string {
  return `${host.stateDir}/locks/${name}.lock`;
}

/**
 * A lease built only from Host primitives, so it works the same on every host: an exclusive create of
 * `<stateDir>/locks/<name>.lock` (a whole temp file hard-linked into place) holding who took it, and a
 * heartbeat refreshed every ttl/3 in a beat file of the holder's own (`<lock>.beat-<token>`).
 *
 * Staleness is judged from the heartbeat written by the holder's clock; clocks of deploying machines
 * should agree within the TTL.
 */
export async function acquireLease(host: Host, name: string, options: LockOptions): Promise<Lease> {
  if (!LOCK_NAME_RE.test(name)) {
    throw new AtomError("ATOM_INVALID_OPTION", `invalid lock name ${JSON.stringify(name)}`, {
      host: host.name,
      expected: "letters, digits, '.', '_' or '-', at most 100 characters",
      found: name,
    });
  }
  const ttlMs = options.ttlMs ?? 60_000;
  const path = leasePath(host, name);
  await host.mkdir(`${host.stateDir}/locks`, { recursive: true });
  const now = new Date().toISOString();
  const info: LeaseInfo = {
    name,
    owner: options.owner,
    pid: process.pid,
    machine: machineId(),
    host: host.name,
    startedAt: now,
    heartbeatAt: now,
    ttlMs,
    token: randomBytes(8).toString("hex"),
    ...(options.note ? { note: options.note } : {}),
  };

  for (let attempt = 0; ; attempt++) {
    try {
      await host.writeFile(path, JSON.stringify(info), { exclusive: true });
      return startLease(host, path, info);
    } catch (error) {
      if (!(error instanceof HostError && error.reason === "EEXIST") || attempt >= 5) throw error;
    }
    let holder: LeaseInfo | null = await readLease(host, name);
    if (!holder) {
      // released between our create and our read (try again), or a holder died between creating the
      // file and writing it: an unreadable lease older than any TTL blocks nobody forever
      const st = await host.stat(path);
      if (!st) continue;
      if (Date.now() - st.mtimeMs < UNREADABLE_GRACE_MS) {
        await sleep(50);
        continue;
      }
      holder = unreadableHolder(name, host, st.mtimeMs);
    }
    const stale = isStale(holder);
    if ((stale && options.breakStale) || (options.breakToken && holder.token === options.breakToken)) {
      await breakIfStill(host, path, holder, info.token);
      continue;
    }
    throw lockedError(host, holder, stale);
  }
}

/** An unreadable lease file counts as held by nobody known, stale after the grace. */
const UNREADABLE_GRACE_MS = 10_000;

function unreadableHolder(name: string, host: Host, mtimeMs: number): LeaseInfo {
  const at = new Date(mtimeMs).toISOString();
  return {
    name,
    owner: "unknown (unreadable lease file)",
    pid: 0,
    machine: "unknown",
    host: host.name,
    startedAt: at,
    heartbeatAt: at,
    ttlMs: UNREADABLE_GRACE_MS,
    token: "",
  };
}

/**
 * Compare-and-swap removal of a stale lease: move the file away (rename is atomic, so of two breakers
 * only one gets it), then look at what was moved. Only the lease judged stale (same token) is dropped;
 * a fresh one that took its place meanwhile is put back and reported as the holder.
 */
async function breakIfStill(host: Host, path: string, stale: LeaseInfo, token: string): Promise<void> {
  const moved = `${path}.broken-${token}`;
  try {
    await host.rename(path, moved);
  } catch (error) {
    if (isNotFound(error)) return; // another breaker moved it first
    throw error;
  }
  let text = "";
  try {
    text = (await host.readFile(moved)).toString("utf8");
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  let movedToken = "";
  try {
    movedToken = (JSON.parse(text) as LeaseInfo).token ?? "";
  } catch {
    // unreadable: it is the stale unreadable lease
  }
  if (movedToken !== stale.token) {
    // a fresh lease: give it back unless a newer one already took the path (its holder then learns
    // of the loss at its next heartbeat)
    await host.writeFile(path, text, { exclusive: true }).catch(() => {});
    await host.rm(moved, { force: true });
    const fresh = JSON.parse(text) as LeaseInfo;
    throw lockedError(host, fresh, false);
  }
  await host.rm(moved, { force: true });
  await host.rm(beatPath(path, stale.token), { force: true }).catch(() => {});
}

/** The current holder of a lease, or null. A half-written lease file reads as null. */
export async function readLease(host: Host, name: string): Promise<(LeaseInfo & { stale: boolean }) | null> {
  let text: string;
  try {
    text = (await host.readFile(leasePath(host, name))).toString("utf8");
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
  let info: LeaseInfo;
  try {
    info = JSON.parse(text) as LeaseInfo;
  } catch {
    return null;
  }
  // the latest heartbeat of this very holder (its beat file names its token)
  try {
    const beat = JSON.parse(
      (await host.readFile(beatPath(leasePath(host, name), info.token))).toString("utf8"),
    ) as { heartbeatAt?: string };
    if (beat.heartbeatAt && beat.heartbeatAt > info.heartbeatAt) info.heartbeatAt = beat.heartbeatAt;
  } catch {
    // none yet, or unreadable mid-write: the lease's own time stands
  }
  return { ...info, stale: isStale(info) };
}

/** Removes a lease whoever holds it (the CLI's `unlock`: shows the holder first). */
export async function breakLease(host: Host, name: string): Promise<LeaseInfo | null> {
  const holder = await readLease(host, name);
  await host.rm(leasePath(host, name), { force: true });
  if (holder) await host.rm(beatPath(leasePath(host, name), holder.token), { force: true }).catch(() => {});
  return holder;
}

function isStale(info: LeaseInfo): boolean {
  // a holder on this very machine whose process is gone is stale now, not after the TTL; "this
  // machine" is the host name AND the pid namespace (containers share host names and boot ids)
  if (info.machine === machineId() && info.pid > 0 && !pidAlive(info.pid)) return true;
  return Date.now() - Date.parse(info.heartbeatAt) > info.ttlMs;
}

let machine: string | undefined;
/** `hostname` plus, on Linux, the boot id and pid namespace: pids compare only within one of these. */
function machineId(): string {
  if (machine === undefined) {
    let extra = "";
    try {
      extra = ` ${readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim().slice(0, 8)} ${readlinkSync("/proc/self/ns/pid")}`;
    } catch {
      // not Linux: the host name alone
    }
    machine = `${hostname()}${extra}`;
  }
  return machine;
}

function lockedError(host: Host, holder: LeaseInfo, stale: boolean): LockedError {
  const who = `${holder.owner} (pid ${holder.pid} on ${holder.machine})`;
  return new LockedError(
    `lock "${holder.name}" is held by ${who} since ${holder.startedAt}${
      stale ? `; its heartbeat stopped at ${holder.heartbeatAt}, so it is stale` : ""
    }`,
    holder,
    stale,
    {
      host: host.name,
      expected: "no other run holding the lock",
      found: `${who}${holder.note ? `, ${holder.note}` : ""}`,
      hint: stale
        ? "if that run is dead, run `atomkit recover` for its trail, then retry with breakStale (--break-stale) or `atomkit unlock`"
        : "wait for that run to finish",
    },
  );
}

function startLease(host: Host, path: string, info: LeaseInfo): Lease {
  const lost = new AbortController();
  let released = false;
  let beating: Promise<void> = Promise.resolve();
  const beat = async () => {
    try {
      const current = JSON.parse((await host.readFile(path)).toString("utf8")) as LeaseInfo;
      if (current.token !== info.token) throw new Error("lease taken over by another run");
      info.heartbeatAt = new Date().toISOString();
      // never the lease itself: see beatPath
      if (!released)
        await host.writeFile(beatPath(path, info.token), JSON.stringify({ heartbeatAt: info.heartbeatAt }));
    } catch (error) {
      if (!released && (isNotFound(error) || /taken over/.test(String(error)))) {
        clearInterval(timer);
        lost.abort(
          new AtomError("ATOM_LOCKED", `lost lock "${info.name}": ${String(error)}`, { host: host.name }),
        );
      }
      // other errors (a dropped link) are retried at the next beat
    }
  };
  const timer = setInterval(
    () => {
      beating = beating.then(beat);
    },
    Math.max(50, Math.floor(info.ttlMs / 3)),
  );
  timer.unref();
  return {
    info,
    signal: lost.signal,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await beating;
      try {
        const current = JSON.parse((await host.readFile(path)).toString("utf8")) as LeaseInfo;
        if (current.token === info.token) await host.rm(path, { force: true });
      } catch (error) {
        if (!isNotFound(error) && !(error instanceof SyntaxError)) throw error;
      } finally {
        await host.rm(beatPath(path, info.token), { force: true }).catch(() => {});
      }
    },
  };
}

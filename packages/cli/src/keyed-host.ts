import { createHash } from "node:crypto";
import type { Host } from "@atomkit/core";
import { acquireLease } from "@atomkit/core/kit";

// A host of the deploy file is named by its key in `hosts`: two `localHost()` under `a` and `b` are two
// hosts, each with its own runs in the trail, its own lock and its own line in `plan` and `status`.
// The Host object names itself (`local`, `deploy@10.0.0.5:22`); this wrapper gives it the key as its
// name and passes everything else through, so the engine records, locks and reports by the key.

/** A deploy file's host under the name it is known by there. */
export interface KeyedHost extends Host {
  /** The name the Host gives itself: what runs recorded before hosts were named by their key. */
  readonly ownName: string;
  /** The lease a lock `name` takes on this host (the same name when the key is the host's own name). */
  lockName(name: string): string;
}

/**
 * `host` named `name`. Locks: when `name` is the host's own name, its own `lock` (the lease file as
 * ever); otherwise a lease of its own per name (`deploy.host-<name>`), so two names for one machine
 * account (one `stateDir`) do not lock each other out of a fleet run, and the lease names this host.
 */
export function keyedHost(name: string, host: Host): KeyedHost {
  const same = name === host.name;
  const suffix = `.host-${/^[A-Za-z0-9._-]{1,40}$/.test(name) ? name : createHash("sha256").update(name).digest("hex").slice(0, 12)}`;
  // idempotent: undo and recover take the lock again under the name the run recorded (already qualified)
  const lockName = (lock: string) => (same || lock.endsWith(suffix) ? lock : `${lock}${suffix}`);
  const keyed: KeyedHost = new Proxy(host as KeyedHost, {
    get(target, prop) {
      if (prop === "name") return name;
      if (prop === "ownName") return target.name;
      if (prop === "lockName") return lockName;
      if (prop === "lock" && !same) return lock;
      // a getter (sshHost's stateDir, resolved once connected) is read from the host itself, each time
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
    has: (target, prop) => prop === "ownName" || prop === "lockName" || Reflect.has(target, prop),
  });
  async function lock(lockname: string, options: Parameters<Host["lock"]>[1]) {
    // a remote host learns its stateDir (its home) once reached; the lease path needs it absolute
    if (!host.stateDir.startsWith("/")) await host.lstat("/");
    return acquireLease(keyed, lockName(lockname), options);
  }
  return keyed;
}

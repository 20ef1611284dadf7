import { AtomError, isAtomError } from "../errors";
import type { Host } from "../host";
import type { TrailStore } from "../trail";
import { takeStoreLock } from "../trail-lock";

// The hosts of a fleet: distinct names, their connections closed as each host's part ends, and the
// store locks of all of them taken at once.

/** Refuses a fleet that names a host twice. */
export function uniqueHosts(names: readonly string[]): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) {
      throw new AtomError("ATOM_INVALID_OPTION", `host "${name}" appears twice in the fleet`, {
        host: name,
        hint: "give each host a distinct name",
      });
    }
    seen.add(name);
  }
}

/** A host's failure as an AtomError (a thrown non-AtomError gets `code`). */
export function asAtomError(error: unknown, code: AtomError["code"]): AtomError {
  return isAtomError(error) ? error : new AtomError(code, String(error), { cause: error });
}

/**
 * A fleet's host resolver that remembers what it handed out, so each host's connection is closed when
 * its part of the fleet ends, not kept (with its sessions on the server) until the whole fleet ends.
 */
export function handedOut(resolve: (name: string) => Host | Promise<Host>) {
  const given = new Map<string, Set<Host>>();
  return {
    get: async (name: string): Promise<Host> => {
      const host = await resolve(name);
      const set = given.get(name) ?? new Set<Host>();
      given.set(name, set.add(host));
      return host;
    },
    async close(name: string): Promise<void> {
      const set = given.get(name);
      given.delete(name);
      await Promise.all([...(set ?? [])].map(closeQuietly));
    },
  };
}

/** A host whose part of the fleet ended: its connection goes (it reopens on the next use). */
export async function closeQuietly(host: Host): Promise<void> {
  await host.close().catch(() => {});
}

/**
 * Runs `fn` holding the store locks of every host at once (`TrailStore.lock`: all or none, before any
 * host is touched), so two controllers racing on one fleet never both deploy: one gets every host, the
 * other is refused with nothing changed. `fn` gets the options with `storeLocked` (its host runs take
 * no lock of their own) and a signal that also aborts when the store loses the locks.
 */
export async function withStoreLock<O extends { signal?: AbortSignal; storeLocked?: boolean }, T>(
  store: TrailStore | undefined,
  hosts: readonly string[],
  note: string,
  options: O,
  fn: (held: O) => Promise<T>,
): Promise<T> {
  const lock = await takeStoreLock(store, [...new Set(hosts)], note, { held: options.storeLocked });
  if (!lock) return fn(options);
  try {
    const signal = options.signal ? AbortSignal.any([options.signal, lock.signal]) : lock.signal;
    return await fn({ ...options, storeLocked: true, signal } as O);
  } finally {
    await lock.release().catch(() => {});
  }
}

import { newRunId } from "../_utils";
import type { TrailRunOptions } from "../engine/from-trail";
import { AtomError } from "../errors";
import type { FleetHostResult, FleetResult, FleetSpread } from "../fleet";
import { rollbackPlan } from "../history";
import type { Host } from "../host";
import { type RecoverResult, recover } from "../recover";
import { type FleetStatus, runsWhere, type TrailStore } from "../trail";
import type { Json } from "../types";
import { undoRun } from "../undo";
import { checkFleetOptions, DEFAULT_FLEET_CONCURRENCY, planBatches, pool } from "./batches";
import { asAtomError, handedOut, uniqueHosts, withStoreLock } from "./hosts";
import { notAFleet, readFleet, writeFleetEnd, writeFleetStart } from "./records";

// Acting on a recorded fleet, or on many hosts from the trail: undo a fleet, roll many hosts back to
// earlier releases, recover a fleet's unfinished host runs.

/** Options of the fleet's undo and recover: those of a single run's, spread over the fleet's hosts. */
export interface FleetTrailOptions extends Omit<TrailRunOptions, "host" | "atom" | "fleet">, FleetSpread {
  /** The hosts, by the names the trail recorded. */
  host: (name: string) => Host | Promise<Host>;
  /** The deploy file's atom for a host's run, e.g. `(view) => build(view.run.host, view.run.meta)`. */
  atom?: TrailRunOptions["atom"];
}

/**
 * Undoes every host run of a fleet that is still live, as one new fleet run (`mode: "undo"`), with the
 * given batches and concurrency; each host's undo follows `undoRun`'s drift and verify rules.
 */
export async function undoFleet(
  store: TrailStore,
  fleetId: string,
  options: FleetTrailOptions,
): Promise<FleetResult> {
  const found = await readFleet(store, fleetId);
  if (!found) throw notAFleet(fleetId);
  const undone = new Set(
    found.runs.length
      ? (await store.listRuns())
          .filter((r) => r.mode === "undo" && r.status === "rolled-back")
          .map((r) => r.undoOf)
      : [],
  );
  const targets = found.runs.filter(
    (r) => r.mode === "run" && r.status === "committed" && !undone.has(r.runId),
  );
  if (!targets.length) {
    throw new AtomError("ATOM_NOT_UNDOABLE", `fleet run ${fleetId} has no committed host run left to undo`, {
      atom: found.fleet.atom,
      found: found.runs.map((r) => `${r.host}: ${r.status}`).join(", ") || "no host runs",
      hint: "`atomkit status` shows what is live on each host",
    });
  }
  return acrossHosts(
    store,
    found.fleet.atom,
    targets.map((r) => ({ host: r.host, runIds: [r.runId] })),
    {
      ...options,
      undoOf: fleetId,
    },
  );
}

/**
 * Brings back earlier releases on many hosts: on each, undoes its live runs of `atomName` newest first,
 * to `to` or by `steps` (default 1: the previous release serves again). One fleet run for all hosts.
 */
export async function rollback(
  store: TrailStore,
  hosts: readonly string[],
  options: FleetTrailOptions & {
    /** Only runs of this atom. */
    atomName?: string;
    /** The run to serve again: one id, or one per host (e.g. a fleet run's host runs). */
    to?: string | Readonly<Record<string, string>>;
    /** How many live releases to undo on each host. Default 1: the previous one serves again. */
    count?: number;
  },
): Promise<FleetResult> {
  uniqueHosts(hosts);
  const { to, count, atomName, ...rest } = options;
  const runs = await runsWhere(store, { host: hosts });
  const toOf = (host: string) => (typeof to === "string" ? to : to?.[host]);
  // every host is planned before any is touched: one that cannot roll back refuses the whole command
  const plans = hosts.map((host) => ({
    host,
    runIds: rollbackPlan(runs, { host, atom: atomName, to: toOf(host), steps: count }).map((r) => r.runId),
  }));
  const atom = atomName ?? runs.find((r) => r.runId === plans[0]?.runIds[0])?.atom ?? "?";
  return acrossHosts(store, atom, plans, rest);
}

/** Recovers the host runs of a fleet that are unfinished or ended rollback-failed. */
export async function recoverFleet(
  store: TrailStore,
  fleetId: string,
  options: FleetTrailOptions & { rollbackCommitted?: boolean },
): Promise<Array<{ host: string; runId: string; result?: RecoverResult; error?: AtomError }>> {
  const found = await readFleet(store, fleetId);
  if (!found) throw notAFleet(fleetId);
  const todo = found.runs.filter((r) => r.status === "unfinished" || r.status === "rollback-failed");
  const out: Array<{ host: string; runId: string; result?: RecoverResult; error?: AtomError }> = [];
  const { batch, concurrency, onBatch, fleetId: _, host, ...rest } = options;
  checkFleetOptions({ batch, concurrency });
  const hosts = handedOut(host);
  return withStoreLock(
    store,
    todo.map((r) => r.host),
    `recover of fleet run ${fleetId}`,
    rest,
    async (held) => {
      for (const [index, list] of planBatches(todo, batch).entries()) {
        onBatch?.({ index, hosts: list.map((r) => r.host) });
        await pool(list, concurrency ?? Math.min(list.length, DEFAULT_FLEET_CONCURRENCY), async (r) => {
          try {
            const [result] = await recover(store, {
              ...(held as Omit<TrailRunOptions, "host">),
              host: hosts.get,
              runId: r.runId,
            });
            out.push({ host: r.host, runId: r.runId, ...(result ? { result } : {}) });
          } catch (error) {
            out.push({ host: r.host, runId: r.runId, error: asAtomError(error, "ATOM_ROLLBACK_FAILED") });
          }
          await hosts.close(r.host);
        });
      }
      return out;
    },
  );
}

/** Undoes, per host, the given runs in order (newest first), as one fleet run of mode "undo". */
function acrossHosts(
  store: TrailStore,
  atomName: string,
  plans: ReadonlyArray<{ host: string; runIds: readonly string[] }>,
  options: FleetTrailOptions & { undoOf?: string },
): Promise<FleetResult> {
  return withStoreLock(
    store,
    plans.map((p) => p.host),
    `undo of ${atomName}`,
    options,
    (held) => acrossHostsHeld(store, atomName, plans, held),
  );
}

async function acrossHostsHeld(
  store: TrailStore,
  atomName: string,
  plans: ReadonlyArray<{ host: string; runIds: readonly string[] }>,
  options: FleetTrailOptions & { undoOf?: string },
): Promise<FleetResult> {
  const started = Date.now();
  const { batch, concurrency, onBatch, fleetId = newRunId(), undoOf, host: hostOf, atom, ...rest } = options;
  checkFleetOptions({ batch, concurrency });
  await writeFleetStart(store, fleetId, {
    atom: atomName,
    mode: "undo",
    ...(undoOf ? { undoOf } : {}),
    hosts: plans.map((p) => p.host),
    options: {
      ...(batch !== undefined ? { batch: batch as Json } : {}),
      ...(concurrency ? { concurrency } : {}),
    },
  });
  const results = new Map(plans.map((p) => [p.host, { host: p.host, state: "not-run" } as FleetHostResult]));
  const hosts = handedOut(hostOf);
  for (const [index, list] of planBatches(plans, batch).entries()) {
    onBatch?.({ index, hosts: list.map((p) => p.host) });
    await pool(list, concurrency ?? Math.min(list.length, DEFAULT_FLEET_CONCURRENCY), async (p) => {
      const entry = results.get(p.host)!;
      for (const runId of p.runIds) {
        try {
          const undo = await undoRun(store, runId, {
            ...(rest as Omit<TrailRunOptions, "host">),
            host: hosts.get,
            ...(atom ? { atom } : {}),
            fleet: fleetId,
          });
          entry.undo = undo;
          entry.state = undo.status === "rolled-back" ? "rolled-back" : "rollback-failed";
        } catch (error) {
          entry.error = asAtomError(error, "ATOM_ROLLBACK_FAILED");
          entry.state = "refused";
        }
        if (entry.state !== "rolled-back") break;
      }
      await hosts.close(p.host);
    });
  }
  const list = [...results.values()];
  // an undo fleet: every host back, some host mixed, or some hosts refused (nothing changed there)
  const status: FleetStatus = list.every((r) => r.state === "rolled-back")
    ? "rolled-back"
    : list.some((r) => r.state === "rollback-failed")
      ? "rollback-failed"
      : "partial";
  await writeFleetEnd(store, fleetId, status, list);
  return {
    fleetId,
    status,
    hosts: list,
    failures: list.filter((r) => r.state !== "rolled-back").length,
    durationMs: Date.now() - started,
  };
}

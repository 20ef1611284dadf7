import { newRunId } from "./_utils";
import type { Atom } from "./atom";
import { AtomError } from "./errors";
import { checkFleetOptions, DEFAULT_FLEET_CONCURRENCY, planBatches, pool } from "./fleet/batches";
import { asAtomError, closeQuietly, uniqueHosts, withStoreLock } from "./fleet/hosts";
import { fleetStatus, writeFleetEnd, writeFleetStart } from "./fleet/records";
import { refuseUnfinished } from "./history";
import type { Host } from "./host";
import { type RunOptions, type RunResult, run } from "./run";
import { type FleetStatus, memoryTrail } from "./trail";
import type { Json } from "./types";
import { undoRun } from "./undo";

// One atom on many hosts: the options and results of a fleet, and `runFleet`. Under fleet/: batches and
// their checks (batches.ts), the fleet's own records (records.ts), its hosts' connections and store locks
// (hosts.ts), and undoing, rolling back and recovering fleets from the trail (undo.ts).

export { checkFleetOptions, DEFAULT_FLEET_CONCURRENCY, planBatches } from "./fleet/batches";
export { readFleet } from "./fleet/records";
export { type FleetTrailOptions, recoverFleet, rollback, undoFleet } from "./fleet/undo";

/** What a fleet does when a host fails: roll back every host, roll back that host only, or halt where it is. */
export type FleetFailurePolicy = "rollback-all" | "rollback-host" | "halt";

/** How a fleet spreads its hosts: shared by runs, undos, rollbacks and recovers of fleets. */
export interface FleetSpread {
  /**
   * Hosts per batch: a number (fixed size), or a canary plan of sizes and percentages of the fleet,
   * e.g. `[1, "25%", "100%"]` (the last entry repeats until every host ran). Default: all at once.
   */
  batch?: number | ReadonlyArray<number | `${number}%`>;
  /**
   * Runs at once within a batch. Default: the batch size, at most `DEFAULT_FLEET_CONCURRENCY` (50):
   * each host in flight costs the controller memory (its connection, sessions and upload buffers) and
   * event-loop time, and a fleet of 1,000 at once would stall it for seconds.
   */
  concurrency?: number;
  /** Called as each batch starts. */
  onBatch?: (batch: { index: number; hosts: string[] }) => void;
  /** The fleet run's id. Default: a new time-sortable id. */
  fleetId?: string;
}

/** Options of `runFleet`: those of `run` (without the host) plus the hosts, batches and failure policy. */
export interface FleetOptions extends Omit<RunOptions, "host" | "runId" | "fleet" | "meta">, FleetSpread {
  /** Recorded with each host's run (a function: per host, e.g. its own vars). */
  meta?: Json | ((host: Host) => Json);
  /** Failed hosts tolerated before the fleet stops. Default 0. */
  maxFailures?: number;
  /**
   * When the budget is exceeded: `rollback-all` aborts runs in flight and undoes every host already
   * committed (each verified); `halt` aborts runs in flight and keeps committed hosts; `rollback-host`
   * lets runs in flight finish and keeps committed hosts. A failed host always rolls itself back.
   * Default `rollback-all`.
   */
  onFailure?: FleetFailurePolicy;
}

/** One host's outcome in a fleet run. */
export interface FleetHostResult {
  host: string;
  /** The host's run; absent when the host was never started (the fleet stopped first) or refused. */
  result?: RunResult;
  /** The fleet-wide undo of a committed host (`rollback-all`), or the undos of a fleet undo/rollback. */
  undo?: RunResult;
  /** Why the host could not be run or undone (params invalid, lock held, drift…). */
  error?: AtomError;
  /** Where the host ended. */
  state: "committed" | "rolled-back" | "rollback-failed" | "not-run" | "refused";
}

/** What `runFleet` returns: the fleet's status and every host's result. */
export interface FleetResult {
  /** The fleet run's id: `undo`, `recover`, `status` and the trail take it to act on every host. */
  fleetId: string;
  /**
   * `committed`: every host committed. `rolled-back`: no host keeps the change. `partial`: some hosts
   * committed, others did not (within the budget, or `halt`/`rollback-host`). `rollback-failed`: some
   * host could not be rolled back: see its `stillApplied`.
   */
  status: FleetStatus;
  hosts: FleetHostResult[];
  failures: number;
  durationMs: number;
}

/**
 * Runs one atom on many hosts in canary-style batches with a failure budget; see `FleetOptions`. The
 * fleet is one run: it has its own id (records in the trail under it), and each host's run names it.
 * Each host's connection is closed when its run ends (and again after its rollback-all undo, which
 * reopens it): the fleet holds connections only for the hosts in flight.
 */
export async function runFleet(
  atomOrPerHost: Atom | ((host: Host) => Atom),
  hosts: readonly Host[],
  options: FleetOptions = {},
): Promise<FleetResult> {
  return withStoreLock(
    options.trail,
    hosts.map((h) => h.name),
    "fleet run",
    options,
    (held) => runFleetHeld(atomOrPerHost, hosts, held),
  );
}

async function runFleetHeld(
  atomOrPerHost: Atom | ((host: Host) => Atom),
  hosts: readonly Host[],
  options: FleetOptions,
): Promise<FleetResult> {
  // per-host atoms let paths, ports or versions differ by host (e.g. several hosts on one machine)
  const atomFor = (h: Host) => (typeof atomOrPerHost === "function" ? atomOrPerHost(h) : atomOrPerHost);
  const atom = hosts[0] ? atomFor(hosts[0]) : (atomOrPerHost as Atom);
  const started = Date.now();
  uniqueHosts(hosts.map((h) => h.name));
  const {
    batch,
    concurrency,
    maxFailures = 0,
    onFailure = "rollback-all",
    onBatch,
    signal,
    fleetId = newRunId(),
    ...runOptions
  } = options;
  checkFleetOptions({ batch, concurrency, maxFailures, onFailure });
  const trail = runOptions.trail ?? memoryTrail();
  const batches = planBatches(hosts, batch);
  if (runOptions.trail)
    await refuseUnfinished(
      trail,
      hosts.map((h) => h.name),
    );
  await writeFleetStart(trail, fleetId, {
    atom: atom.name,
    mode: "run",
    hosts: hosts.map((h) => h.name),
    options: {
      ...(batch !== undefined ? { batch: batch as Json } : {}),
      ...(concurrency ? { concurrency } : {}),
      maxFailures,
      onFailure,
    },
    ...(runOptions.meta !== undefined && typeof runOptions.meta !== "function"
      ? { meta: runOptions.meta }
      : {}),
  });

  const results = new Map<Host, FleetHostResult>(hosts.map((h) => [h, { host: h.name, state: "not-run" }]));
  const stop = new AbortController();
  const outer = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  let failures = 0;
  let exceeded = false;

  const runOne = async (host: Host) => {
    const entry = results.get(host)!;
    try {
      const { meta, ...rest } = runOptions;
      const result = await run(atomFor(host), {
        ...rest,
        ...(meta !== undefined ? { meta: typeof meta === "function" ? meta(host) : meta } : {}),
        trail,
        host,
        signal: outer,
        fleet: fleetId,
        refuseUnfinished: false,
      });
      entry.result = result;
      entry.state = result.status;
    } catch (error) {
      entry.error = asAtomError(error, "ATOM_STEP_FAILED");
      entry.state = "refused";
    }
    if (entry.state !== "committed") {
      failures++;
      if (failures > maxFailures && !exceeded) {
        exceeded = true;
        if (onFailure !== "rollback-host")
          stop.abort(
            new AtomError(
              "ATOM_ABORTED",
              `fleet stopped: ${failures} host(s) failed, budget ${maxFailures}`,
              {
                atom: atom.name,
                host: host.name,
              },
            ),
          );
      }
    }
  };

  for (const [index, list] of batches.entries()) {
    if (exceeded || outer.aborted) break;
    onBatch?.({ index, hosts: list.map((h) => h.name) });
    await pool(list, concurrency ?? Math.min(list.length, DEFAULT_FLEET_CONCURRENCY), async (h) => {
      if (exceeded || outer.aborted) return;
      await runOne(h);
      // its sessions on the server go too; a rollback-all reconnects on demand
      await closeQuietly(h);
    });
  }

  if (exceeded && onFailure === "rollback-all") {
    const committed = hosts.filter((h) => results.get(h)?.state === "committed");
    const width = concurrency ?? Math.min(committed.length, DEFAULT_FLEET_CONCURRENCY);
    await pool(committed, width, async (h) => {
      const entry = results.get(h)!;
      // rebuilt from the very atom this fleet ran (secrets included), checked against the trail
      const undo = await undoRun(trail, entry.result!.runId, {
        ...runOptions,
        host: h,
        atom: atomFor(h),
        fleet: fleetId,
      }).catch((error: unknown) => {
        entry.error = asAtomError(error, "ATOM_ROLLBACK_FAILED");
        return undefined;
      });
      await closeQuietly(h);
      if (undo) entry.undo = undo;
      entry.state = undo?.status === "rolled-back" ? "rolled-back" : "rollback-failed";
    });
  }

  const list = [...results.values()];
  const status = fleetStatus(list.map((r) => r.state));
  await writeFleetEnd(trail, fleetId, status, list);
  return { fleetId, status, hosts: list, failures, durationMs: Date.now() - started };
}

import { hostname } from "node:os";
import { newRunId, nowIso } from "./_utils";
import type { Atom } from "./atom";
import { AtomError, isAtomError } from "./errors";
import { refuseUnfinished, rollbackPlan } from "./history";
import type { Host } from "./host";
import { type RecoverResult, recover, type TrailRunOptions } from "./recover";
import { type RunOptions, type RunResult, run } from "./run";
import {
  type FleetEndRecord,
  type FleetStartRecord,
  type FleetStatus,
  memoryTrail,
  type RunSummary,
  runsWhere,
  type TrailStore,
} from "./trail";
import { takeStoreLock } from "./trail-lock";
import type { Json } from "./types";
import { undoRun } from "./undo";

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

/** Runs at once within a batch when `concurrency` is not given (see `FleetSpread.concurrency`). */
export const DEFAULT_FLEET_CONCURRENCY = 50;

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

// --- Acting on a recorded fleet, or on many hosts from the trail ---

export interface FleetTrailOptions extends Omit<TrailRunOptions, "host" | "atom" | "fleet">, FleetSpread {
  /** The hosts, by the names the trail recorded. */
  host: (name: string) => Host | Promise<Host>;
  /** The deploy file's atom for a host's run, e.g. `(view) => build(view.run.host, view.run.meta)`. */
  atom?: TrailRunOptions["atom"];
}

/** The fleet's own start record and the host runs that name it. */
export async function readFleet(
  store: TrailStore,
  fleetId: string,
): Promise<{ fleet: FleetStartRecord; end?: FleetEndRecord; runs: RunSummary[] } | undefined> {
  const records = await store.readRun(fleetId);
  const fleet = records.find((r): r is FleetStartRecord => r.t === "fleet");
  if (!fleet || fleet.fleetId !== fleetId) return undefined;
  const end = records.find((r): r is FleetEndRecord => r.t === "fleet-end");
  const runs = await runsWhere(store, { fleet: fleetId });
  return { fleet, ...(end ? { end } : {}), runs };
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

// --- Internal helpers ---

function fleetStatus(states: ReadonlyArray<FleetHostResult["state"]>): FleetStatus {
  if (states.includes("rollback-failed")) return "rollback-failed";
  if (states.every((s) => s === "committed")) return "committed";
  if (states.includes("committed")) return "partial";
  return "rolled-back";
}

async function writeFleetStart(
  store: TrailStore,
  fleetId: string,
  f: Omit<FleetStartRecord, "t" | "v" | "fleetId" | "at" | "pid" | "machine">,
): Promise<void> {
  await store.append(
    fleetId,
    [{ t: "fleet", v: 2, fleetId, ...f, at: nowIso(), pid: process.pid, machine: hostname() }],
    {
      sync: true,
    },
  );
}

async function writeFleetEnd(
  store: TrailStore,
  fleetId: string,
  status: FleetStatus,
  hosts: FleetHostResult[],
) {
  const record: FleetEndRecord = {
    t: "fleet-end",
    fleetId,
    status,
    at: nowIso(),
    hosts: hosts.map((h) => ({
      host: h.host,
      state: h.state,
      ...(h.result ? { runId: h.result.runId } : {}),
      ...(h.undo ? { undoRunId: h.undo.runId } : {}),
    })),
  };
  // the host runs carry the outcome; a fleet summary the trail could not take is no reason to fail
  await store.append(fleetId, [record], { sync: true }).catch(() => {});
}

function notAFleet(fleetId: string): AtomError {
  return new AtomError("ATOM_RUN_NOT_FOUND", `no fleet run ${fleetId} in the trail`, {
    hint: "`atomkit trail` lists runs and fleets",
  });
}

function uniqueHosts(names: readonly string[]): void {
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

/** Bad fleet options are invalid input, refused before anything runs. */
export function checkFleetOptions(o: {
  batch?: FleetSpread["batch"];
  concurrency?: number | undefined;
  maxFailures?: number | undefined;
  onFailure?: string | undefined;
}): void {
  const bad = (field: string, expected: string, found: unknown) =>
    new AtomError("ATOM_INVALID_OPTION", `invalid fleet option ${field}`, {
      expected,
      found: JSON.stringify(found) ?? String(found),
      hint: `fix ${field} (e.g. --${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)})`,
    });
  if (o.concurrency !== undefined && !(Number.isInteger(o.concurrency) && o.concurrency >= 1))
    throw bad("concurrency", "a whole number of at least 1", o.concurrency);
  if (o.maxFailures !== undefined && !(Number.isInteger(o.maxFailures) && o.maxFailures >= 0))
    throw bad("maxFailures", "a whole number of at least 0", o.maxFailures);
  if (o.onFailure !== undefined && !["rollback-all", "rollback-host", "halt"].includes(o.onFailure))
    throw bad("onFailure", '"rollback-all", "rollback-host" or "halt"', o.onFailure);
  if (o.batch !== undefined) planBatches([1], o.batch);
}

/** Splits hosts into batches: fixed size, or a canary plan like `[1, "25%", "100%"]`. */
export function planBatches<T>(hosts: readonly T[], batch: FleetSpread["batch"]): T[][] {
  const out: T[][] = [];
  if (batch === undefined) return hosts.length ? [[...hosts]] : [];
  const plan = typeof batch === "number" ? [batch] : batch;
  if (!plan.length)
    throw new AtomError("ATOM_INVALID_OPTION", "fleet batch plan is empty", {
      hint: 'e.g. batch: [1, "25%", "100%"]',
    });
  for (const entry of plan) {
    const ok =
      typeof entry === "number"
        ? Number.isInteger(entry) && entry >= 1
        : /^\d+(\.\d+)?%$/.test(entry) && Number.parseFloat(entry) > 0 && Number.parseFloat(entry) <= 100;
    if (!ok) {
      throw new AtomError("ATOM_INVALID_OPTION", "invalid fleet batch size", {
        expected: 'a whole number of at least 1, or a percentage like "25%"',
        found: JSON.stringify(entry),
        hint: "fix batch (e.g. --batch 1,25%,100%)",
      });
    }
  }
  let i = 0;
  let k = 0;
  while (i < hosts.length) {
    const entry = plan[Math.min(k++, plan.length - 1)]!;
    const size =
      typeof entry === "number" ? entry : Math.ceil((Number.parseFloat(entry) / 100) * hosts.length);
    out.push(hosts.slice(i, i + size));
    i += size;
  }
  return out;
}

function asAtomError(error: unknown, code: AtomError["code"]): AtomError {
  return isAtomError(error) ? error : new AtomError(code, String(error), { cause: error });
}

/**
 * A fleet's host resolver that remembers what it handed out, so each host's connection is closed when
 * its part of the fleet ends, not kept (with its sessions on the server) until the whole fleet ends.
 */
function handedOut(resolve: (name: string) => Host | Promise<Host>) {
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
async function closeQuietly(host: Host): Promise<void> {
  await host.close().catch(() => {});
}

async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(workers);
}

/**
 * Runs `fn` holding the store locks of every host at once (`TrailStore.lock`: all or none, before any
 * host is touched), so two controllers racing on one fleet never both deploy: one gets every host, the
 * other is refused with nothing changed. `fn` gets the options with `storeLocked` (its host runs take
 * no lock of their own) and a signal that also aborts when the store loses the locks.
 */
async function withStoreLock<O extends { signal?: AbortSignal; storeLocked?: boolean }, T>(
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

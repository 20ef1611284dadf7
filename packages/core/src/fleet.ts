import { type Atom, stepsOf } from "./atom";
import { AtomError, isAtomError } from "./errors";
import type { Host } from "./host";
import { atomSecrets, undoRun } from "./recover";
import { type RunOptions, type RunResult, run } from "./run";
import type { AnyStepKind } from "./step";
import { memoryTrail } from "./trail";

export type FleetFailurePolicy = "rollback-all" | "rollback-host" | "halt";

export interface FleetOptions extends Omit<RunOptions, "host" | "runId"> {
  /**
   * Hosts per batch: a number (fixed size), or a canary plan of sizes and percentages of the fleet,
   * e.g. `[1, "25%", "100%"]` (the last entry repeats until every host ran). Default: all at once.
   */
  batch?: number | ReadonlyArray<number | `${number}%`>;
  /** Runs at once within a batch. Default: the batch size. */
  concurrency?: number;
  /** Failed hosts tolerated before the fleet stops. Default 0. */
  maxFailures?: number;
  /**
   * When the budget is exceeded: `rollback-all` aborts runs in flight and undoes every host already
   * committed (each verified); `halt` aborts runs in flight and keeps committed hosts; `rollback-host`
   * lets runs in flight finish and keeps committed hosts. A failed host always rolls itself back.
   * Default `rollback-all`.
   */
  onFailure?: FleetFailurePolicy;
  /** Called as each batch starts. */
  onBatch?: (batch: { index: number; hosts: string[] }) => void;
}

export interface FleetHostResult {
  host: string;
  /** The host's run; absent when the host was never started (the fleet stopped first) or refused. */
  result?: RunResult;
  /** The fleet-wide undo of a committed host (`rollback-all`). */
  undo?: RunResult;
  /** Why the run could not start (params invalid, lock held…). */
  error?: AtomError;
  /** Where the host ended. */
  state: "committed" | "rolled-back" | "rollback-failed" | "not-run" | "refused";
}

export interface FleetResult {
  /**
   * `committed`: every host committed. `rolled-back`: no host keeps the change. `partial`: some hosts
   * committed, others did not (within the budget, or `halt`/`rollback-host`). `rollback-failed`: some
   * host could not be rolled back: see its `stillApplied`.
   */
  status: "committed" | "rolled-back" | "partial" | "rollback-failed";
  hosts: FleetHostResult[];
  failures: number;
  durationMs: number;
}

/**
 * Runs one atom on many hosts in canary-style batches with a failure budget; see `FleetOptions`.
 * Every host's run has its own run id and trail; a fleet-wide rollback is an `undoRun` per host.
 */
export async function runFleet(
  atomOrPerHost: Atom | ((host: Host) => Atom),
  hosts: readonly Host[],
  options: FleetOptions = {},
): Promise<FleetResult> {
  // per-host atoms let paths, ports or versions differ by host (e.g. several hosts on one machine)
  const atomFor = (h: Host) => (typeof atomOrPerHost === "function" ? atomOrPerHost(h) : atomOrPerHost);
  const atom = hosts[0] ? atomFor(hosts[0]) : (atomOrPerHost as Atom);
  const started = Date.now();
  const names = new Set<string>();
  for (const h of hosts) {
    if (names.has(h.name)) {
      throw new AtomError("ATOM_INVALID_ATOM", `host "${h.name}" appears twice in the fleet`, {
        atom: atom.name,
        hint: "give each host a distinct name",
      });
    }
    names.add(h.name);
  }
  const {
    batch,
    concurrency,
    maxFailures = 0,
    onFailure = "rollback-all",
    onBatch,
    signal,
    ...runOptions
  } = options;
  const trail = runOptions.trail ?? memoryTrail();
  const batches = planBatches(hosts, batch);
  const results = new Map<Host, FleetHostResult>(hosts.map((h) => [h, { host: h.name, state: "not-run" }]));
  const stop = new AbortController();
  const outer = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  let failures = 0;
  let exceeded = false;

  const runOne = async (host: Host) => {
    const entry = results.get(host)!;
    try {
      const result = await run(atomFor(host), { ...runOptions, trail, host, signal: outer });
      entry.result = result;
      entry.state = result.status;
    } catch (error) {
      entry.error = isAtomError(error)
        ? error
        : new AtomError("ATOM_STEP_FAILED", String(error), { cause: error });
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
              { atom: atom.name, host: host.name },
            ),
          );
      }
    }
  };

  for (const [index, list] of batches.entries()) {
    if (exceeded || outer.aborted) break;
    onBatch?.({ index, hosts: list.map((h) => h.name) });
    await pool(list, concurrency ?? list.length, async (h) => {
      if (!exceeded && !outer.aborted) await runOne(h);
    });
  }

  if (exceeded && onFailure === "rollback-all") {
    // the atom's own kinds rebuild its steps: the caller need not register them for a fleet undo
    const kinds = hosts
      .flatMap((h) => stepsOf(atomFor(h)))
      .map(({ step }) => ({ kind: step.kind, definition: step.definition }) as unknown as AnyStepKind);
    const committed = hosts.filter((h) => results.get(h)?.state === "committed");
    await pool(committed, concurrency ?? committed.length, async (h) => {
      const entry = results.get(h)!;
      // the trail holds no secrets: the undo gets them back from the atom this fleet ran
      const undo = await atomSecrets(atomFor(h))
        .then((secrets) =>
          undoRun(trail, entry.result!.runId, { ...runOptions, host: h, steps: kinds, secrets }),
        )
        .catch((error: unknown) => {
          entry.error = isAtomError(error)
            ? error
            : new AtomError("ATOM_ROLLBACK_FAILED", String(error), { cause: error });
          return undefined;
        });
      if (undo) entry.undo = undo;
      entry.state = undo?.status === "rolled-back" ? "rolled-back" : "rollback-failed";
    });
  }

  const states = [...results.values()].map((r) => r.state);
  const status: FleetResult["status"] = states.includes("rollback-failed")
    ? "rollback-failed"
    : states.every((s) => s === "committed")
      ? "committed"
      : states.includes("committed")
        ? "partial"
        : "rolled-back";
  return { status, hosts: [...results.values()], failures, durationMs: Date.now() - started };
}

/** Splits hosts into batches: fixed size, or a canary plan like `[1, "25%", "100%"]`. */
export function planBatches<T>(hosts: readonly T[], batch: FleetOptions["batch"]): T[][] {
  const out: T[][] = [];
  if (batch === undefined) return hosts.length ? [[...hosts]] : [];
  const plan = typeof batch === "number" ? [batch] : batch;
  if (!plan.length)
    throw new AtomError("ATOM_INVALID_ATOM", "fleet batch plan is empty", {
      hint: 'e.g. batch: [1, "25%", "100%"]',
    });
  let i = 0;
  let k = 0;
  while (i < hosts.length) {
    const entry = plan[Math.min(k++, plan.length - 1)]!;
    const size =
      typeof entry === "number" ? entry : Math.ceil((Number.parseFloat(entry) / 100) * hosts.length);
    if (!Number.isFinite(size) || size < 1) {
      throw new AtomError("ATOM_INVALID_ATOM", "invalid fleet batch size", {
        expected: 'a positive number or a percentage like "25%"',
        found: JSON.stringify(entry),
      });
    }
    out.push(hosts.slice(i, i + size));
    i += size;
  }
  return out;
}

async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(workers);
}

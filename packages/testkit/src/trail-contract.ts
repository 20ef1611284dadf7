import type { TrailStore } from "@atomkit/core";
import { afterEach, beforeEach, describe } from "vitest";
import {
  engineCases,
  listCases,
  lockCases,
  recordsCases,
  removeCases,
  type TrailSuite,
} from "./trail-contract-cases";

/** One test's backing for the trail store contract, made fresh by `setup`. */
export interface TrailStoreFixture {
  /**
   * A store on the fixture's backing (a directory, a database schema). Called again, it opens another
   * handle on the same backing, as a second process would: what one wrote, the other reads.
   */
  open(): TrailStore | Promise<TrailStore>;
  /** Removes the backing (after every handle was closed). */
  cleanup?(): Promise<void>;
}

/** How the trail store contract suites get their backing. */
export interface TrailStoreContractOptions {
  /** The store's name in the describe block's title: `TrailStore contract: <name>`. */
  name: string;
  /** A fresh, empty backing per test. */
  setup(): Promise<TrailStoreFixture>;
  /** Default 30 000 ms: a database on a loaded machine takes its time. */
  timeoutMs?: number;
}

/** One describe block with a fresh backing per test, holding the given parts of the contract. */
function trailSuite(
  options: TrailStoreContractOptions,
  part: string | undefined,
  cases: Array<(s: TrailSuite) => void>,
): void {
  const timeout = options.timeoutMs ?? 30_000;
  const name = `TrailStore contract: ${options.name}`;
  describe(part ? `${name}: ${part}` : name, { timeout }, () => {
    let fixture: TrailStoreFixture;
    let stores: TrailStore[];
    const suite: TrailSuite = {
      open: async () => {
        const s = await fixture.open();
        stores.push(s);
        return s;
      },
    };
    beforeEach(async () => {
      stores = [];
      fixture = await options.setup();
    });
    afterEach(async () => {
      for (const s of stores) await s.close?.();
      await fixture.cleanup?.();
    });
    for (const add of cases) add(suite);
  });
}

/**
 * A run's records come back in append order, synced or not, to this handle and another; values are kept
 * exactly (unicode, nesting, big numbers, empty strings); a record over the size limit is refused and
 * keeps what came before; concurrent runs stay apart; a record appended while the trail is read is
 * stored once.
 */
export function describeTrailRecordsContract(options: TrailStoreContractOptions): void {
  trailSuite(options, "records", [recordsCases]);
}

/**
 * listRuns gives runs oldest first with their status and selects by host, atom, status, fleet and
 * undoOf; a fleet's own records are held but are no host run; a handle sees what others appended since
 * (no stale summaries, unsynced records once a later append is synced).
 */
export function describeTrailListContract(options: TrailStoreContractOptions): void {
  trailSuite(options, "listRuns", [listCases]);
}

/** remove takes every record of a run and nothing else (skipped for a store without remove). */
export function describeTrailRemoveContract(options: TrailStoreContractOptions): void {
  trailSuite(options, "remove", [removeCases]);
}

/** A real run through the engine and its undo from another handle, as `atomkit undo` in a new process. */
export function describeTrailEngineContract(options: TrailStoreContractOptions): void {
  trailSuite(options, "engine", [engineCases]);
}

/**
 * Store locks are taken all or none, a refusal names the holder, release frees them (skipped for a
 * store without locks).
 */
export function describeTrailLocksContract(options: TrailStoreContractOptions): void {
  trailSuite(options, "locks", [lockCases]);
}

/**
 * The behaviour every `TrailStore` must have (core's file and memory trails, `@atomkit/store-postgres`,
 * yours), as one vitest suite: records, listRuns, remove, engine and locks (each part is also exported
 * alone).
 */
export function describeTrailStoreContract(options: TrailStoreContractOptions): void {
  trailSuite(options, undefined, [recordsCases, listCases, removeCases, engineCases, lockCases]);
}

import type { Host, Step } from "@atomkit/core";
import { afterEach, beforeEach, describe } from "vitest";
import {
  applyUndoCases,
  type ContractSuite,
  observeCases,
  paramsCases,
  recoverCases,
  rollbackCases,
} from "./contract-cases";
import { bindStep, viaJson } from "./step-context";
import type { ChildHost } from "./undo-child";

export type { ChildHost } from "./undo-child";

/** One test's step and host for the step contract, made fresh by `setup`. */
export interface StepFixture {
  /** Where the step acts. */
  host: Host;
  /** Builds a fresh step with the same params; called more than once to prove undo needs only the trail. */
  step: () => Step;
  /**
   * A picture of everything the step may touch, compared byte for byte where the suite expects "nothing
   * changed" or "back as before": `snapshotTree(dir)` (a mismatch names the paths that differ) or
   * `hashTree(dir)` (a mismatch shows two hashes). Keep the host's `stateDir` out of it (outside `dir`,
   * or `{ ignore }`): locks and backups change there on every run. Default: the step's own observe.
   */
  snapshot?: () => Promise<unknown>;
  /** Makes the next apply fail after a partial change (see `breakApplyLeaves`). Omit if it cannot. */
  breakApply?: () => Promise<void> | void;
  /**
   * How the new process of the recover case builds `host`. Default, for a local host:
   * `localHost({ stateDir: host.stateDir })`. A remote host without it skips that case (with the reason).
   */
  childHost?: ChildHost;
  /** Called after each test: remove temp dirs, stop processes and containers. */
  cleanup?: () => Promise<void>;
}

/** How the step contract suites get their fixture, and what they may expect of the kind. */
export interface StepContractOptions {
  /** Title of the describe block. Default: "step contract". */
  name?: string;
  /** A fresh fixture per test: temp dir, processes, containers… */
  setup: () => Promise<StepFixture>;
  /**
   * The kind's apply is idempotent: a second apply from the after-state changes nothing. Default false:
   * the suite then only requires that apply changes the observed state.
   */
  idempotent?: boolean;
  /** What `breakApply` leaves behind when apply fails: a partial change, or none. Default `"changed"`. */
  breakApplyLeaves?: "changed" | "unchanged";
  /**
   * Where the recover case's new Node process loads the kind from: a built JS module (absolute path,
   * `file:` URL or package name). Default: the kind's `package`, then the package in the cwd (the one
   * whose tests run), each as built: build before testing.
   */
  kindModule?: string | URL;
  /** Extra tests inside the same describe, with the current fixture. */
  additionalTests?: (fixture: () => StepFixture) => void;
}

/** One describe block with a fresh fixture per test, holding the given parts of the contract. */
function contractSuite(
  options: StepContractOptions,
  part: string | undefined,
  cases: Array<(s: ContractSuite) => void>,
): void {
  let f: StepFixture | undefined;
  const fixture = () => {
    if (!f) throw new Error("testkit: fixture not set up");
    return f;
  };
  const bind = () => bindStep(fixture().step(), { host: fixture().host, runId: "testkit" });
  const suite: ContractSuite = {
    options,
    fixture,
    bind,
    snapshot: async () => {
      const fx = fixture();
      return fx.snapshot ? fx.snapshot() : viaJson(await (await bind()).observe());
    },
  };
  const name = options.name ?? "step contract";
  describe(part ? `${name}: ${part}` : name, () => {
    beforeEach(async () => {
      f = await options.setup();
    });
    afterEach(async () => {
      await f?.cleanup?.();
      f = undefined;
    });
    for (const add of cases) add(suite);
    options.additionalTests?.(fixture);
  });
}

/**
 * observe is read-only (the picture does not change) and its state survives the trail: a JSON round
 * trip gives the same state, and two observations are the same.
 */
export function describeObserveContract(options: StepContractOptions): void {
  contractSuite(options, "observe", [observeCases]);
}

/**
 * recover and undo re-validate the params a trail holds: the kind's validator accepts its own output
 * (kinds without secret params), and every observed state passes the kind's own `state` check.
 */
export function describeParamsContract(options: StepContractOptions): void {
  contractSuite(options, "params", [paramsCases]);
}

/**
 * apply changes the observed state (`idempotent`: a second apply changes nothing); undo from JSON
 * round-tripped states on a fresh step instance restores `before`; undo twice is safe.
 */
export function describeApplyUndoContract(options: StepContractOptions): void {
  contractSuite(options, "apply and undo", [applyUndoCases]);
}

/**
 * What `recover` and `atomkit undo <runId>` do: undo in a NEW Node process that gets only the JSON a
 * trail holds (params, before and after with secrets masked) and loads the kind from its module. A kind
 * that keeps anything it needs for undo in module memory fails here and nowhere else.
 */
export function describeRecoverContract(options: StepContractOptions): void {
  contractSuite(options, "recover", [recoverCases]);
}

/**
 * The engine rolls the step back, verified, when a later step fails, and commits it; a failure in the
 * middle of apply (`breakApply`) is classified by check and rolled back.
 */
export function describeRollbackContract(options: StepContractOptions): void {
  contractSuite(options, "rollback", [rollbackCases]);
}

/**
 * The whole contract every step kind keeps, as one vitest suite (observe, params, apply and undo,
 * recover, rollback: each part is also exported alone). Run it from the kind's own tests with a
 * fixture factory, ours and third parties' alike.
 */
export function describeStepContract(options: StepContractOptions): void {
  contractSuite(options, undefined, [observeCases, paramsCases, applyUndoCases, recoverCases, rollbackCases]);
}

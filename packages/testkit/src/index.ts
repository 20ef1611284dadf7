export type { ChildExit, ChildRun, ChildScript, RunInChildOptions } from "./child";
export { runInChild } from "./child";
export type { HostContractOptions, HostFixture } from "./host-contract";
export { describeHostContract, HOSTILE_STRINGS } from "./host-contract";
export { growingBudget, PATIENCE_MS, waitUntil } from "./patience";
export { freePort } from "./ports";
export type { BoundStep, StepContextOptions, TestStepContext } from "./step-context";
export { bindStep, stepContext } from "./step-context";
export type { ChildHost, StepContractOptions, StepFixture } from "./step-contract";
export {
  describeApplyUndoContract,
  describeObserveContract,
  describeParamsContract,
  describeRecoverContract,
  describeRollbackContract,
  describeStepContract,
} from "./step-contract";
export { serviceMissing, testbedEnv } from "./testbed";
export type { TrailStoreContractOptions, TrailStoreFixture } from "./trail-contract";
export {
  describeTrailEngineContract,
  describeTrailListContract,
  describeTrailLocksContract,
  describeTrailRecordsContract,
  describeTrailRemoveContract,
  describeTrailStoreContract,
} from "./trail-contract";
export type { TreeEntry, TreeOptions } from "./tree";
export { diffTrees, hashTree, snapshotTree, TreeSnapshot } from "./tree";

export type { HostContractOptions, HostFixture } from "./host-contract";
export { describeHostContract, HOSTILE_STRINGS } from "./host-contract";
export { growingBudget, PATIENCE_MS, waitUntil } from "./patience";
export { freePort } from "./ports";
export type { StepContractOptions, StepFixture } from "./step-contract";
export { describeStepContract } from "./step-contract";
export { serviceMissing, testbedEnv } from "./testbed";
export type { TreeEntry } from "./tree";
export { diffTrees, hashTree, snapshotTree, TreeSnapshot } from "./tree";

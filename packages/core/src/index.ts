// The user API: define atoms and steps, run, plan, recover, undo, roll back, fleets, hosts, trails and
// the errors they throw. What step kinds, hosts and trail stores are written with is in
// `@atomkit/core/kit` (kit.ts, KIT.md).
export type { Atom, AtomDefinition, AtomPhase } from "./atom";
export { atom } from "./atom";
export type {
  AtomErrorCode,
  ErrorDetails,
  ErrorInfo,
  HostErrorReason,
  ParamsIssue,
  StepPhase,
} from "./errors";
export {
  AtomError,
  DriftError,
  errorReason,
  HostError,
  isAtomError,
  isNotFound,
  LockedError,
  ParamsError,
  RollbackError,
  StepError,
  TrailError,
} from "./errors";
export type { RunEvent, RunEventType } from "./events";
export type { FileTrailOptions } from "./file-trail";
export { fileTrail } from "./file-trail";
export type {
  FleetFailurePolicy,
  FleetHostResult,
  FleetOptions,
  FleetResult,
  FleetSpread,
  FleetTrailOptions,
} from "./fleet";
export { readFleet, recoverFleet, rollback, runFleet, undoFleet } from "./fleet";
export type {
  ConnectOptions,
  ConnectTarget,
  ExecOptions,
  ExecResult,
  FileStat,
  Host,
  Lease,
  LeaseInfo,
  LockOptions,
  UploadOptions,
  UploadResult,
  WriteFileOptions,
} from "./host";
export type { LocalHostOptions } from "./local-host";
export { localHost } from "./local-host";
export { validateParams } from "./params";
export type { PlannedStep, PlanResult } from "./plan";
export { plan } from "./plan";
export { type PruneOptions, type PrunePlan, prunePlan, pruneTrail } from "./prune";
export type { RebuildOptions, SecretValues } from "./rebuild";
export { loadRun } from "./rebuild";
export type { RecoverOptions, RecoverResult, TrailRunOptions } from "./recover";
export { recover } from "./recover";
export { registerSteps } from "./registry";
export type { LockSettings, RunOptions, RunResult } from "./run";
export { run } from "./run";
export type { TrailKey } from "./seal";
export { keyFrom as trailKey, sealTrail } from "./seal";
export type {
  AnyStepKind,
  ParamsSchema,
  Step,
  StepContext,
  StepKind,
  StepKindDefinition,
  StepOptions,
} from "./step";
export { defineStep } from "./step";
export type {
  FleetEndRecord,
  FleetStartRecord,
  FleetStatus,
  LockRecord,
  RunEndRecord,
  RunMode,
  RunQuery,
  RunStartRecord,
  RunStatus,
  RunSummary,
  RunView,
  StepStatus,
  StepTrailRecord,
  StepView,
  StoreLock,
  StoreLockOwner,
  TrailRecord,
  TrailStepInfo,
  TrailStore,
} from "./trail";
export { memoryTrail } from "./trail";
export type { Json, StandardSchemaV1 } from "./types";
export { compareRun, undoRun } from "./undo";

export { deepEqual, quoteArg as shellQuote } from "./_utils";
export type { Atom, AtomDefinition, AtomPhase } from "./atom";
export { atom, stepsOf } from "./atom";
export {
  absolutePath,
  clip,
  integer,
  keepBackup,
  restoreBackup,
  stepError,
  tempBeside,
  tempPrefix,
} from "./authoring";
export type { BoundStep, StepRecord } from "./engine";
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
  toErrorInfo,
} from "./errors";
export type { RunEvent, RunEventType } from "./events";
export type { CheckedFields, FieldChecks, FieldIssue } from "./fields";
export { checkFields, closest, fieldIssues, optional, ParamsFieldError, paramsObject, show } from "./fields";
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
export {
  checkFleetOptions,
  DEFAULT_FLEET_CONCURRENCY,
  planBatches,
  readFleet,
  recoverFleet,
  rollback,
  runFleet,
  undoFleet,
} from "./fleet";
export { changesAfter, liveRuns, refuseUnfinished, rollbackPlan, undoneRuns } from "./history";
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
export { acquireLease, breakLease, leasePath, readLease } from "./lease";
export type { LocalHostOptions } from "./local-host";
export { execError, localHost } from "./local-host";
export { validateParams } from "./params";
export type { PlannedStep, PlanResult } from "./plan";
export { plan } from "./plan";
export { type PruneOptions, type PrunePlan, prunePlan, pruneTrail } from "./prune";
export type { RebuildOptions, SecretValues } from "./rebuild";
export { atomSecrets, loadRun } from "./rebuild";
export type { RecoverOptions, RecoverResult, TrailRunOptions } from "./recover";
export { recover } from "./recover";
export { MASK, Redactor } from "./redact";
export { registerSteps } from "./registry";
export type { LockSettings, RunOptions, RunResult } from "./run";
export { run } from "./run";
export type { TrailKey } from "./seal";
export { canonical, keyFrom as trailKey, sealTrail } from "./seal";
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
export {
  foldRun,
  hostLockName,
  MAX_RECORD_BYTES,
  matchesQuery,
  memoryTrail,
  refuseOversized,
  summarize,
  summarizeAll,
} from "./trail";
export { lockRecord } from "./trail-lock";
export type { Json, MaybePromise, StandardSchemaV1 } from "./types";
export { compareRun, undoRun } from "./undo";

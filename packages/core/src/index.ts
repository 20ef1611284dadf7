export { deepEqual, quoteArg as shellQuote } from "./_utils";
export type { Atom, AtomDefinition, AtomPhase } from "./atom";
export { atom, stepsOf } from "./atom";
export {
  absolutePath,
  clip,
  integer,
  ParamsFieldError,
  paramsObject,
  show,
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
  toErrorInfo,
} from "./errors";
export type { RunEvent, RunEventType } from "./events";
export type { FileTrailOptions } from "./file-trail";
export { fileTrail } from "./file-trail";
export type { FleetFailurePolicy, FleetHostResult, FleetOptions, FleetResult } from "./fleet";
export { planBatches, runFleet } from "./fleet";
export type {
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
export type { RecoverOptions, RecoverResult, SecretValues, TrailRunOptions } from "./recover";
export { atomSecrets, recover, undoRun } from "./recover";
export { registerSteps } from "./registry";
export type { LockSettings, RunOptions, RunResult } from "./run";
export { run } from "./run";
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
  RunEndRecord,
  RunMode,
  RunStartRecord,
  RunStatus,
  RunSummary,
  RunView,
  StepStatus,
  StepTrailRecord,
  StepView,
  TrailRecord,
  TrailStepInfo,
  TrailStore,
} from "./trail";
export { foldRun, memoryTrail, summarize } from "./trail";
export type { Json, MaybePromise, StandardSchemaV1 } from "./types";

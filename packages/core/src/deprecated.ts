// Helpers that moved to `@atomkit/core/kit`, still exported from the main entry for the packages not
// yet switched over (step-process, step-docker, step-ssh's host, testkit, store-postgres, the CLI).
// Each goes once nothing imports it from `@atomkit/core` any more.
import * as kit from "./kit";

/** @deprecated use `@atomkit/core/kit` */
export type CheckedFields<T> = kit.CheckedFields<T>;
/** @deprecated use `@atomkit/core/kit` */
export type FieldChecks<T> = kit.FieldChecks<T>;
/** @deprecated use `@atomkit/core/kit` */
export type FieldIssue = kit.FieldIssue;

/** @deprecated use `@atomkit/core/kit` */
export const acquireLease = kit.acquireLease;
/** @deprecated use `@atomkit/core/kit` */
export const atomSecrets = kit.atomSecrets;
/** @deprecated use `@atomkit/core/kit` */
export const breakLease = kit.breakLease;
/** @deprecated use `@atomkit/core/kit` */
export const checkFields = kit.checkFields;
/** @deprecated use `@atomkit/core/kit` */
export const checkFleetOptions = kit.checkFleetOptions;
/** @deprecated use `@atomkit/core/kit` */
export const closest = kit.closest;
/** @deprecated use `@atomkit/core/kit` */
export const deepEqual = kit.deepEqual;
/** @deprecated use `@atomkit/core/kit` */
export const execError = kit.execError;
/** @deprecated use `@atomkit/core/kit` */
export const foldRun = kit.foldRun;
/** @deprecated use `@atomkit/core/kit` */
export const liveRuns = kit.liveRuns;
/** @deprecated use `@atomkit/core/kit` */
export const MAX_RECORD_BYTES = kit.MAX_RECORD_BYTES;
/** @deprecated use `@atomkit/core/kit` */
export const optional = kit.optional;
/** @deprecated use `@atomkit/core/kit` */
export const ParamsFieldError = kit.ParamsFieldError;
/** @deprecated use `@atomkit/core/kit` */
export type ParamsFieldError = kit.ParamsFieldError;
/** @deprecated use `@atomkit/core/kit` */
export const planBatches = kit.planBatches;
/** @deprecated use `@atomkit/core/kit` */
export const readLease = kit.readLease;
/** @deprecated use `@atomkit/core/kit` */
export const Redactor = kit.Redactor;
/** @deprecated use `@atomkit/core/kit` */
export type Redactor = kit.Redactor;
/** @deprecated use `@atomkit/core/kit` */
export const refuseOversized = kit.refuseOversized;
/** @deprecated use `@atomkit/core/kit` */
export const shellQuote = kit.shellQuote;
/** @deprecated use `@atomkit/core/kit` */
export const show = kit.show;
/** @deprecated use `@atomkit/core/kit`'s `fail()` */
export const stepError = kit.stepError;
/** @deprecated use `@atomkit/core/kit` */
export const stepsOf = kit.stepsOf;
/** @deprecated use `@atomkit/core/kit` */
export const summarizeAll = kit.summarizeAll;
/** @deprecated use `@atomkit/core/kit` */
export const tempBeside = kit.tempBeside;
/** @deprecated use `@atomkit/core/kit` */
export const tempPrefix = kit.tempPrefix;
/** @deprecated use `@atomkit/core/kit` */
export const undoneRuns = kit.undoneRuns;

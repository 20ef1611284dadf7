/**
 * `@atomkit/core/kit`: what people writing step kinds and hosts use — params validators, errors that
 * the engine completes with the run's context, temporary names, text and masking, waiting, and for host
 * authors leases, exec errors and shell quoting. The main entry (`@atomkit/core`) keeps the user API.
 *
 * Skeleton: helpers move here from the main entry and from the providers' private copies (#12).
 */
export { quoteArg as shellQuote, sleep } from "./_utils";
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
export type { CheckedFields, FieldChecks, FieldIssue } from "./fields";
export { checkFields, closest, fieldIssues, optional, ParamsFieldError, paramsObject, show } from "./fields";
export { connectTarget } from "./host";
export * from "./kit/health";
export { acquireLease, breakLease, readLease } from "./lease";
export { execError } from "./local-host";
export { MASK, Redactor } from "./redact";

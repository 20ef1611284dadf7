/**
 * `@atomkit/core/kit`: what people writing step kinds, hosts, trail stores and front ends use. The main
 * entry (`@atomkit/core`) keeps the user API. KIT.md lists every export with one line each.
 */
import { execError as execErrorOf } from "./local-host";

// --- Text, masking, comparing ---
// --- For host authors ---
export { deepEqual, quoteArg as shellQuote } from "./_utils";
// --- Errors: a kind throws `fail(…)` (or anything); the engine adds atom, host, step, kind and phase ---
export { AtomError, errorReason, HostError, isAtomError, isNotFound, StepError } from "./errors";
// --- Params validators: `checkFields` runs one check per field and reports every issue at once ---
export type { CheckedFields, FieldChecks, FieldIssue } from "./fields";
export { checkFields, closest, fieldIssues, optional, ParamsFieldError, paramsObject, show } from "./fields";
// --- Reaching servers on the host; health probes (http, tcp, provider kinds) ---
export { connectTarget } from "./host";
// --- Files on the host: temporary names for atomic replaces, backups an undo puts back ---
export { keepBackup, restoreBackup } from "./kit/backup";
export { type FailDetails, fail, isKindFailure, stepError } from "./kit/fail";
export * from "./kit/health";
export { clip, tempBeside, tempPrefix } from "./kit/names";
export {
  absolutePath,
  argv,
  arrayOf,
  boolean,
  durationMs,
  env,
  envName,
  integer,
  MAX_TIMER_MS,
  nonEmptyString,
  nullable,
  object,
  oneOf,
  port,
  string,
  stringArray,
  stringRecord,
} from "./kit/params";
// --- Waiting ---
export { sleep, turns, withTimeout } from "./kit/time";
export { acquireLease, breakLease, readLease } from "./lease";
export { MASK, maskUrlPasswords, Redactor } from "./redact";
/**
 * `execError(hostName, commandShown, result)`: the HostError (`reason: "EXIT"`) for a command that
 * exited non-zero or was killed, with its exit code, full stderr, and stderr's last five lines in the
 * message. What a `Host.exec` implementation throws unless `reject: false`.
 */
export const execError: typeof execErrorOf = execErrorOf;

// --- For front ends (the CLI, dashboards): reading a trail's history, checking options ---
export { stepsOf } from "./atom";
export { checkFleetOptions, DEFAULT_FLEET_CONCURRENCY, planBatches } from "./fleet";
export { changesAfter, liveRuns, refuseUnfinished, rollbackPlan, undoneRuns } from "./history";
export { atomSecrets } from "./rebuild";
// --- For trail store authors ---
export { canonical } from "./seal";
export {
  foldRun,
  hostLockName,
  MAX_RECORD_BYTES,
  matchesQuery,
  refuseOversized,
  summarizeAll,
} from "./trail";
export { lockRecord } from "./trail-lock";

import type { ProcessHealthCheck } from "./_health";

export type { NormalizedHealth, ProcessHealthCheck } from "./_health";
/** @deprecated renamed `ProcessHealthCheck`: step-docker has its own `HealthCheck`. */
export type HealthCheck = ProcessHealthCheck;
export type { StartProcessOptions, StartProcessParams, StartProcessState } from "./start";
export { startProcess } from "./start";
export type { StopProcessOptions, StopProcessParams, StopProcessState } from "./stop";
export { stopProcess } from "./stop";

import { startProcess } from "./start";
import { stopProcess } from "./stop";

/** Every kind of this package, for `registerSteps(...steps)` (recover and undo in a new process). */
export const steps = [startProcess, stopProcess] as const;

import { setKey } from "./set";

export type { KvSetOptions, KvSetParams, KvState, RecordedKvState } from "./set";
export { checkState, recordedValue, setKey } from "./set";

/** Every kind of this package, for `registerSteps(...steps)` (or the CLI config's `steps`) before `recover` or `undo`. */
export const steps = [setKey];

import { swapSymlink } from "./swap";

export type { SwapSymlinkOptions, SwapSymlinkParams, SymlinkState } from "./swap";
export { swapSymlink } from "./swap";

/** Every kind of this package, for `registerSteps(...steps)` before `recover` or `undo`. */
export const steps = [swapSymlink];

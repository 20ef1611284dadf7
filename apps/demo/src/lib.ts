// The demo's building blocks, for the benchmark and anyone composing the release differently.
export { buildRelease, SERVER_SOURCE } from "./app";
export { probe, stopApp, watchHttp } from "./http";
export type { ReleaseOptions } from "./release";
export { releaseAtom, STEP_NAMES, setupAtom } from "./release";

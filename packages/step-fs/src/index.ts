import { makeDir } from "./mkdir";
import { pruneReleases } from "./prune";
import { removePath } from "./remove";
import { untar } from "./untar";
import { uploadFile } from "./upload";
import { writeFile } from "./write";

export type { FileState } from "./_utils";
export type { ArchiveLimits, ArchiveSummary, InspectArchiveOptions } from "./archive";
export { inspectArchive, UnsafeArchiveError } from "./archive";
export type { EmptyTrashOptions, EmptyTrashResult } from "./empty-trash";
export { emptyTrash } from "./empty-trash";
export type { MakeDirOptions, MakeDirParams, MakeDirState } from "./mkdir";
export { makeDir } from "./mkdir";
export type { PruneReleasesOptions, PruneReleasesParams, PruneState } from "./prune";
export { pruneReleases } from "./prune";
export type { RemoveOptions, RemoveParams, RemoveState } from "./remove";
export { removePath } from "./remove";
export type { UntarLimits, UntarOptions, UntarParams, UntarState } from "./untar";
export { untar } from "./untar";
export type { UploadFileOptions, UploadFileParams } from "./upload";
export { uploadFile } from "./upload";

import type { WriteFileStepOptions } from "./write";

export type { WriteFileParams, WriteFileStepOptions } from "./write";
/** @deprecated renamed `WriteFileStepOptions`: core's `WriteFileOptions` are `Host.writeFile`'s. */
export type WriteFileOptions = WriteFileStepOptions;
export { writeFile } from "./write";

/** Every kind of this package, for `registerSteps(...steps)` before `recover` or `undo`. */
export const steps = [uploadFile, untar, writeFile, makeDir, removePath, pruneReleases];

import { ensureImage } from "./image";
import { removeContainer } from "./remove";
import { runContainer } from "./run";
import { stopContainer } from "./stop";
import { swapContainer } from "./swap";

export type { DockerConnection } from "./_connection";

import type { ContainerHealthCheck, ContainerHttpCheck } from "./_health";

export type { ContainerHealthCheck, ContainerHttpCheck } from "./_health";
/** @deprecated renamed `ContainerHealthCheck`: step-process has its own `HealthCheck`. */
export type HealthCheck = ContainerHealthCheck;
/** @deprecated renamed `ContainerHttpCheck`: `@atomkit/core/kit` has its own `HttpCheck`. */
export type HttpCheck = ContainerHttpCheck;
export type { ContainerSpec, DockerHealthcheck, MountSpec } from "./_spec";
export type { ContainerEvidence, ContainerFacts, ContainerMount, ContainerState } from "./_state";
export type { EnsureImageOptions, EnsureImageParams, EnsureImageState } from "./image";
export type { PruneContainersOptions, PruneContainersResult } from "./prune";
export { pruneContainers } from "./prune";
export type { RemoveContainerOptions, RemoveContainerParams } from "./remove";
export type { RunContainerOptions, RunContainerParams } from "./run";
export type { StopContainerOptions, StopContainerParams } from "./stop";
export type {
  PendingContainer,
  SwapContainerOptions,
  SwapContainerParams,
  SwapContainerState,
} from "./swap";
export { ensureImage, removeContainer, runContainer, stopContainer, swapContainer };

/** Every kind of this package, for `registerSteps(...steps)`. */
export const steps = [swapContainer, runContainer, stopContainer, removeContainer, ensureImage] as const;

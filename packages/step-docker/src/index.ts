import { ensureImage } from "./image";
import { removeContainer } from "./remove";
import { runContainer } from "./run";
import { stopContainer } from "./stop";
import { swapContainer } from "./swap";

export type { DockerConnection } from "./_connection";
export type { HealthCheck, HttpCheck } from "./_health";
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

import { defineStep } from "@atomkit/core";
import { CONNECTION_SECRETS, dockerClient } from "./_connection";
import { inspect, stop } from "./_docker";
import {
  autoRemoveError,
  parseSingle,
  restart,
  type SingleContainerOptions,
  type SingleContainerParams,
} from "./_single";
import { type ContainerState, checkContainerState, observeContainer, sameFacts } from "./_state";

/** The options of `docker.stop`: the container's name and daemon, its stop timeout, and how an undo restarts it. */
export type StopContainerOptions = SingleContainerOptions;
/** `docker.stop`'s options validated, defaults filled in. */
export type StopContainerParams = SingleContainerParams;

/** `docker.stop`: stops the container named `name` (nothing to do when absent or stopped already). */
export const stopContainer = defineStep({
  kind: "docker.stop",
  package: "@atomkit/step-docker",
  params: (input: StopContainerOptions) => parseSingle(input),
  secret: CONNECTION_SECRETS,
  describe: (p) => `stop container ${p.name}`,
  observe: (ctx, p): Promise<ContainerState> =>
    observeContainer(dockerClient(ctx.host, p.docker), p.name, ctx.signal),
  same: (a, b) => sameFacts(a.current, b.current),
  state: checkContainerState,

  async apply(ctx, p, before) {
    if (!before.current?.running) return;
    const c = dockerClient(ctx.host, p.docker);
    const id = before.current.evidence.id;
    const info = await inspect(c, id, ctx.signal);
    if (info?.HostConfig?.AutoRemove) throw autoRemoveError(p.name);
    await stop(c, id, p.stopTimeoutMs, ctx.signal);
    ctx.log(`stopped ${p.name} (${id.slice(0, 12)})`);
  },

  // cannot restore: the service's in-memory state and open connections; it starts afresh from its image
  // and its filesystem as the stop left them
  async undo(ctx, p, before) {
    if (!before.current?.running) return;
    const c = dockerClient(ctx.host, p.docker);
    await restart(ctx, c, before.current, p);
  },
});

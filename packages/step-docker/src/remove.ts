import { AtomError, defineStep } from "@atomkit/core";
import { CONNECTION_SECRETS, dockerClient } from "./_connection";
import { byName, inspect, nameSafe, rename, stop } from "./_docker";
import {
  autoRemoveError,
  parseSingle,
  restart,
  type SingleContainerOptions,
  type SingleContainerParams,
} from "./_single";
import {
  type ContainerState,
  checkContainerState,
  differences,
  factsOf,
  observeContainer,
  sameFacts,
} from "./_state";

/** The options of `docker.remove`: the container's name and daemon, and how an undo restarts it. */
export type RemoveContainerOptions = SingleContainerOptions;
/** `docker.remove`'s options validated, defaults filled in. */
export type RemoveContainerParams = SingleContainerParams;

/**
 * `docker.remove`: takes the container named `name` out of service so it can be put back. It is
 * stopped and renamed `<name>-removed-<runId>`, not deleted: a deleted container (its writable layer,
 * its id, its anonymous volumes) cannot be brought back by any undo. `pruneContainers` deletes it later.
 */
export const removeContainer = defineStep({
  kind: "docker.remove",
  package: "@atomkit/step-docker",
  params: (input: RemoveContainerOptions) => parseSingle(input),
  secret: CONNECTION_SECRETS,
  describe: (p) => `remove container ${p.name} (kept stopped as ${p.name}-removed-<runId>)`,
  observe: (ctx, p): Promise<ContainerState> =>
    observeContainer(dockerClient(ctx.host, p.docker), p.name, ctx.signal),
  same: (a, b) => sameFacts(a.current, b.current),
  state: checkContainerState,

  async apply(ctx, p, before) {
    if (!before.current) return;
    const c = dockerClient(ctx.host, p.docker);
    const info = await inspect(c, before.current.evidence.id, ctx.signal);
    if (!info) return;
    if (info.HostConfig?.AutoRemove) throw autoRemoveError(p.name);
    const retired = `${p.name}-removed-${nameSafe(ctx.runId)}`;
    const other = await byName(c, retired, ctx.signal);
    if (other && other.Id !== info.Id) {
      throw new AtomError("ATOM_STEP_FAILED", `container ${retired} exists already`, {
        expected: `no container named ${retired}`,
        found: other.Id.slice(0, 12),
        hint: "remove a name once per run",
      });
    }
    await stop(c, info.Id, p.stopTimeoutMs, ctx.signal);
    await rename(c, info.Id, retired, ctx.signal);
    ctx.log(`${p.name} stopped and kept as ${retired}; pruneContainers deletes it later`);
  },

  // cannot restore: the service's in-memory state and open connections (it was stopped); a container
  // already deleted by pruneContainers cannot come back
  async undo(ctx, p, before) {
    const was = before.current;
    if (!was) return;
    const c = dockerClient(ctx.host, p.docker);
    // found by id (evidence), then proven to be the container recorded before a name is touched
    const info = await inspect(c, was.evidence.id, ctx.signal);
    if (!info) {
      throw new AtomError("ATOM_STEP_FAILED", `the removed container ${p.name} is gone`, {
        expected: `container ${was.evidence.id.slice(0, 12)}, kept stopped since the remove`,
        found: "no such container; nothing was changed",
        hint: "it was pruned; recreate it (docker.run) from its image",
      });
    }
    const diff = differences(factsOf(info), was, ["name", "running"]);
    if (diff.length) {
      throw new AtomError(
        "ATOM_STEP_FAILED",
        `container ${info.Id.slice(0, 12)} is not the one ${p.name} was`,
        {
          expected: `the container recorded before the remove (${was.image.ref})`,
          found: `a different ${diff.join(", ")}; nothing was changed`,
          hint: "it was changed since (docker update?); recreate the service with docker.run instead",
        },
      );
    }
    if (info.Name !== `/${p.name}`) await rename(c, info.Id, p.name, ctx.signal);
    if (was.running) await restart(ctx, c, was, p);
  },
});

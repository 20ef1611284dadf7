import { AtomError, defineStep } from "@atomkit/core";
import { oneOf } from "@atomkit/core/kit";
import { CONNECTION_SECRETS, dockerClient } from "./_connection";
import { byName, inspect, LABEL, nameSafe, remove, rename, requireImage, start, stop } from "./_docker";
import { waitHealthy } from "./_health";
import { type ContainerSpec, parseContainerSpec } from "./_spec";
import { differences, factsOf, sameFacts } from "./_state";
import {
  checkSwapState,
  createContainer,
  discardUnserved,
  healthOfPrevious,
  SWAP_KIND as KIND,
  observeSwap,
  ours,
  refuseForeign,
  type SwapContainerState,
} from "./_swap";

export type { PendingContainer, SwapContainerState } from "./_swap";

/** The options of `docker.swap`: the container spec and the order of stopping the old and starting the new. */
export interface SwapContainerOptions extends ContainerSpec {
  /**
   * How the new container takes over, like Docker Swarm's `update_config.order`:
   * - `"stop-first"` (default): stop the old container, start the new one. With host networking both
   *   can use the same port; nothing answers for the gap between the two (measured by the bench).
   * - `"start-first"`: start the new one and wait for its health while the old one still serves, then
   *   stop the old one. The new one must not need the old one's port: another port (e.g. behind a
   *   proxy that tries both) or `network: "none"` with an `exec` health check.
   */
  order?: "stop-first" | "start-first";
}

/** `docker.swap`'s options validated, defaults filled in. */
export type SwapContainerParams = Required<Pick<SwapContainerOptions, "order" | "docker" | "stopTimeoutMs">> &
  SwapContainerOptions;

/**
 * `docker.swap`: replaces the container holding `name` with a new one from `image`, keeping the old
 * one (stopped, renamed `<name>-prev-<runId>`) for an instant undo.
 */
export const swapContainer = defineStep({
  kind: KIND,
  package: "@atomkit/step-docker",
  params: (input: SwapContainerOptions): SwapContainerParams => {
    return parseContainerSpec(input, {
      order: (v, p) => oneOf(v, p, ["stop-first", "start-first"] as const, { fallback: "stop-first" }),
    });
  },
  secret: CONNECTION_SECRETS,
  describe: (p) => `swap container ${p.name} → ${p.image} (${p.order})`,
  observe: (ctx, p): Promise<SwapContainerState> =>
    observeSwap(dockerClient(ctx.host, p.docker), p.name, ctx.signal),
  // what serves the name; ids, times and the `-next-` containers of swaps cut short are evidence
  same: (a, b) => sameFacts(a.current, b.current),
  state: checkSwapState,

  async apply(ctx, p, before) {
    const c = dockerClient(ctx.host, p.docker);
    const signal = ctx.signal;
    await requireImage(c, p.image, signal);
    const nextName = `${p.name}-next-${nameSafe(ctx.runId)}`;
    const prevName = `${p.name}-prev-${nameSafe(ctx.runId)}`;
    const old = before.current ? await inspect(c, before.current.evidence.id, signal) : null;
    if (before.current && !old) {
      throw new AtomError("ATOM_STEP_FAILED", `container ${p.name} disappeared while the swap began`, {
        expected: `container ${before.current.evidence.id.slice(0, 12)}`,
        found: "no such container",
        hint: "another deploy or a person is changing this container; retry when it is quiet",
      });
    }
    if (old?.HostConfig?.AutoRemove) {
      throw new AtomError("ATOM_STEP_FAILED", `container ${p.name} was started with --rm`, {
        expected: "a container that survives being stopped",
        found: "AutoRemove: stopping it deletes it, so the swap could not be undone",
        hint: "recreate it without --rm (e.g. with docker.run), then swap",
      });
    }
    if (old && (await byName(c, prevName, signal))) {
      throw new AtomError("ATOM_STEP_FAILED", `container ${prevName} exists already`, {
        expected: `no container named ${prevName}`,
        found: "one: this run already swapped this name once",
        hint: "swap a name once per run (merge the two steps)",
      });
    }
    // an earlier attempt of this same run left its new container: it is ours and never served
    const leftover = await byName(c, nextName, signal);
    if (leftover) {
      if (leftover.Config.Labels?.[LABEL.run] !== ctx.runId) {
        throw new AtomError("ATOM_STEP_FAILED", `container ${nextName} exists and was not made by this run`, {
          found: leftover.Id.slice(0, 12),
          hint: `remove it by hand: docker rm -f ${nextName}`,
        });
      }
      await remove(c, leftover.Id, signal);
    }

    const created = await createContainer(c, ctx, p, nextName);
    ctx.log(`created ${nextName} (${created.slice(0, 12)}) from ${p.image}`);
    const oldRunning = old?.State.Running === true;
    try {
      if (p.order === "stop-first" && oldRunning) {
        ctx.log(`stopping ${p.name} (stop-first)`);
        await stop(c, old!.Id, p.stopTimeoutMs, signal);
      }
      await start(c, created, signal);
      ctx.log(`started ${nextName}; waiting for it to be healthy`);
      await waitHealthy(c, created, p.health, {
        host: ctx.host,
        signal,
        what: `new container ${nextName}`,
        log: ctx.log,
      });
      if (p.order === "start-first" && oldRunning) {
        ctx.log(`stopping ${p.name} (start-first)`);
        await stop(c, old!.Id, p.stopTimeoutMs, signal);
      }
      if (old) await rename(c, old.Id, prevName, signal);
      await rename(c, created, p.name, signal);
    } catch (error) {
      await discardUnserved(c, ctx, p.name, created, old ? { id: old.Id, running: oldRunning } : null);
      throw error;
    }
    ctx.log(
      `${p.name} is now ${created.slice(0, 12)}${old ? `; the previous one is kept as ${prevName}` : ""}`,
    );
  },

  // cannot restore: what the new container wrote to its own filesystem or anonymous volumes (removed
  // with it), nor the old container's in-memory state (it was stopped, not paused)
  async undo(ctx, p, before, after) {
    const c = dockerClient(ctx.host, p.docker);
    const signal = ctx.signal;
    refuseForeign(p.name, [before, after]);
    const now = await observeSwap(c, p.name, signal);
    const keep = new Set([before.current?.evidence.id, ...before.evidence.pending.map((x) => x.id)]);
    const added = new Map<string, string>(); // id → name
    for (const s of [after, now]) {
      if (!s) continue;
      if (s.current) added.set(s.current.evidence.id, s.current.name);
      for (const x of s.evidence.pending) added.set(x.id, x.name);
    }
    for (const id of keep) if (id) added.delete(id);
    for (const [id, name] of added) {
      const info = await inspect(c, id, signal);
      if (info && !ours(info, p.name)) {
        throw new AtomError(
          "ATOM_STEP_FAILED",
          `container ${name} was not created by Atomkit; not removing it`,
          {
            expected: `container ${before.current?.name ?? "(none)"} or one these steps created for ${p.name}`,
            found: `${name} (${id.slice(0, 12)}) without org.atomkit labels for ${p.name}`,
            hint: "someone replaced the container by hand; inspect it and decide",
          },
        );
      }
    }

    // the previous container is found by id, then proven to be the one recorded (not just any container
    // that got its id's place): never a silent wrong restore, and refused before anything is removed
    const was = before.current;
    const prev = was ? await inspect(c, was.evidence.id, signal) : null;
    if (was && !prev) {
      throw new AtomError("ATOM_STEP_FAILED", `the previous container of ${p.name} is gone`, {
        expected: `container ${was.evidence.id.slice(0, 12)} (${was.image.ref}), kept stopped since the swap`,
        found: "no such container; nothing was changed",
        hint: "it was removed (pruneContainers, docker rm?); redeploy the previous image with a new swap instead",
      });
    }
    if (was && prev) {
      const diff = differences(factsOf(prev), was, ["name", "running"]);
      if (diff.length) {
        throw new AtomError(
          "ATOM_STEP_FAILED",
          `container ${prev.Id.slice(0, 12)} is not the one ${p.name} ran`,
          {
            expected: `the container recorded before the swap (${was.image.ref})`,
            found: `a different ${diff.join(", ")}; nothing was changed`,
            hint: "it was changed since (docker update?); redeploy the previous version with a new swap instead",
          },
        );
      }
    }
    const health = prev ? healthOfPrevious(prev, p) : undefined;
    const wait = (id: string) =>
      waitHealthy(c, id, health, {
        host: ctx.host,
        signal,
        what: `previous container ${p.name}`,
        log: ctx.log,
      });

    let healthy = false;
    let tried = false;
    if (p.order === "start-first" && prev && was?.running && added.size > 0) {
      // keep something answering: the previous one serves again before the new one goes
      tried = true;
      try {
        await start(c, prev.Id, signal);
        await wait(prev.Id);
        healthy = true;
      } catch (error) {
        if (signal.aborted) throw error;
        ctx.log(
          `previous container not healthy beside the new one (${(error as Error).message}); removing the new one first`,
        );
      }
    }
    for (const [id, name] of added) {
      await stop(c, id, p.stopTimeoutMs, signal);
      await remove(c, id, signal);
      ctx.log(`removed ${name} (${id.slice(0, 12)})`);
    }
    if (!prev || !was) return;
    if (prev.Name !== `/${p.name}`) await rename(c, prev.Id, p.name, signal);
    const state = (await inspect(c, prev.Id, signal))?.State;
    if (was.running && !healthy) {
      if (tried && state?.Running) await stop(c, prev.Id, p.stopTimeoutMs, signal);
      await start(c, prev.Id, signal);
      await wait(prev.Id);
    } else if (!was.running && state?.Running) {
      await stop(c, prev.Id, p.stopTimeoutMs, signal);
    }
    ctx.log(`${p.name} is back to ${prev.Id.slice(0, 12)}`);
  },

  /**
   * Removes this run's `<name>-next-<runId>` container left by a swap cut short (the process died
   * before it was renamed or removed). Only one made by this run for this name; left alone while it
   * runs and the container holding the name does not, because then it may be all that answers.
   */
  async cleanup(ctx, p) {
    const c = dockerClient(ctx.host, p.docker);
    const nextName = `${p.name}-next-${nameSafe(ctx.runId)}`;
    const info = await byName(c, nextName, ctx.signal);
    if (!info) return;
    const labels = info.Config.Labels ?? {};
    if (labels[LABEL.kind] !== KIND || labels[LABEL.run] !== ctx.runId || labels[LABEL.name] !== p.name) {
      ctx.log(`left ${nextName}: it was not made by this run's docker.swap`);
      return;
    }
    if (info.State.Running && !(await byName(c, p.name, ctx.signal))?.State.Running) {
      ctx.log(`left ${nextName} running: nothing else serves ${p.name}`);
      return;
    }
    await remove(c, info.Id, ctx.signal);
    ctx.log(`removed ${nextName} (${info.Id.slice(0, 12)}), left by a swap cut short`);
  },
});

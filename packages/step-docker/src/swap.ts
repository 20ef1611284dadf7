import { AtomError, defineStep, type StepContext } from "@atomkit/core";
import type Docker from "dockerode";
import { CONNECTION_SECRETS, type DockerClient, dockerClient } from "./_connection";
import {
  byName,
  type ContainerFacts,
  call,
  dockerStatus,
  factsOf,
  inspect,
  LABEL,
  listByPrefix,
  nameSafe,
  remove,
  rename,
  requireImage,
  start,
  stop,
} from "./_docker";
import { type HealthCheck, healthFromLabel, waitHealthy } from "./_health";
import { type ContainerSpec, createOptions, labelsFor, parseContainerSpec, specKeys } from "./_spec";
import { object, oneOf, onlyKeys } from "./_validate";

const KIND = "docker.swap";

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

export type SwapContainerParams = Required<Pick<SwapContainerOptions, "order" | "docker" | "stopTimeoutMs">> &
  SwapContainerOptions;

export interface SwapContainerState {
  /** The container holding the name, or null. */
  current: ContainerFacts | null;
  /** New containers of a swap cut short (still named `<name>-next-<runId>`). */
  pending: ContainerFacts[];
}

/**
 * `docker.swap`: replaces the container holding `name` with a new one from `image`, keeping the old
 * one (stopped, renamed `<name>-prev-<runId>`) for an instant undo.
 */
export const swapContainer = defineStep({
  kind: KIND,
  package: "@atomkit/step-docker",
  params: (input: SwapContainerOptions): SwapContainerParams => {
    const o = object(input, "");
    onlyKeys(o, "", specKeys(["order"]));
    const spec = parseContainerSpec(o);
    return {
      ...spec,
      docker: spec.docker!,
      stopTimeoutMs: spec.stopTimeoutMs!,
      order: oneOf(o.order, "order", ["stop-first", "start-first"] as const, "stop-first"),
    };
  },
  secret: CONNECTION_SECRETS,
  describe: (p) => `swap container ${p.name} → ${p.image} (${p.order})`,
  observe: (ctx, p) => observeSwap(dockerClient(p.docker), p.name, ctx.signal),

  async apply(ctx, p, before) {
    const c = dockerClient(p.docker);
    const signal = ctx.signal;
    await requireImage(c, p.image, signal);
    const nextName = `${p.name}-next-${nameSafe(ctx.runId)}`;
    const prevName = `${p.name}-prev-${nameSafe(ctx.runId)}`;
    const old = before.current ? await inspect(c, before.current.id, signal) : null;
    if (before.current && !old) {
      throw new AtomError("ATOM_STEP_FAILED", `container ${p.name} disappeared while the swap began`, {
        expected: `container ${before.current.id.slice(0, 12)}`,
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
    ctx.log(
      `${p.name} is now ${created.slice(0, 12)}${old ? `; the previous one is kept as ${prevName}` : ""}`,
    );
  },

  // cannot restore: what the new container wrote to its own filesystem or anonymous volumes (removed
  // with it), nor the old container's in-memory state (it was stopped, not paused)
  async undo(ctx, p, before, after) {
    const c = dockerClient(p.docker);
    const signal = ctx.signal;
    const now = await observeSwap(c, p.name, signal);
    const keep = new Set([before.current?.id, ...before.pending.map((x) => x.id)]);
    const added = new Map<string, ContainerFacts>();
    for (const x of [after?.current, now.current, ...(after?.pending ?? []), ...now.pending]) {
      if (x && !keep.has(x.id)) added.set(x.id, x);
    }
    for (const x of added.values()) {
      const info = await inspect(c, x.id, signal);
      if (info && !info.Config.Labels?.[LABEL.kind]) {
        throw new AtomError(
          "ATOM_STEP_FAILED",
          `container ${x.name} was not created by Atomkit; not removing it`,
          {
            expected: `container ${before.current?.name ?? "(none)"} or one this step created`,
            found: `${x.name} (${x.id.slice(0, 12)}) without org.atomkit labels`,
            hint: "someone replaced the container by hand; inspect it and decide",
          },
        );
      }
    }

    const was = before.current;
    const prev = was ? await inspect(c, was.id, signal) : null;
    if (was && !prev) {
      throw new AtomError("ATOM_STEP_FAILED", `the previous container of ${p.name} is gone`, {
        expected: `container ${was.id.slice(0, 12)} (${was.image}), kept stopped since the swap`,
        found: "no such container",
        hint: "it was removed (pruned?); redeploy the previous image with a new swap instead",
      });
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
    for (const x of added.values()) {
      await stop(c, x.id, p.stopTimeoutMs, signal);
      await remove(c, x.id, signal);
      ctx.log(`removed ${x.name} (${x.id.slice(0, 12)})`);
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
});

export async function observeSwap(
  c: DockerClient,
  name: string,
  signal?: AbortSignal,
): Promise<SwapContainerState> {
  const current = await byName(c, name, signal);
  const pending: ContainerFacts[] = [];
  for (const x of await listByPrefix(c, `${name}-next-`, signal)) {
    if (x.info.Labels?.[LABEL.name] !== name) continue;
    const info = await inspect(c, x.info.Id, signal);
    if (info) pending.push(factsOf(info));
  }
  return { current: current ? factsOf(current) : null, pending };
}

/** Creates under a temporary name; a retry after a lost answer finds its own container by label. */
async function createContainer(c: DockerClient, ctx: StepContext, spec: ContainerSpec, name: string) {
  try {
    const created = await call(
      c,
      `create container ${name}`,
      (s) =>
        c.docker.createContainer({
          ...createOptions(spec, name, labelsFor(ctx, KIND, spec)),
          abortSignal: s,
        }),
      ctx.signal,
    );
    return created.id;
  } catch (error) {
    if (dockerStatus(error) === 409) {
      const mine = await byName(c, name, ctx.signal);
      if (mine && mine.Config.Labels?.[LABEL.run] === ctx.runId) return mine.Id;
    }
    throw error;
  }
}

/**
 * How undo knows the previous container is back: the health check it was deployed with (a label), else
 * its Docker HEALTHCHECK, else — stop-first, where old and new share the port — this step's own check
 * without `expect.body` (which describes the new version, not the old one).
 */
function healthOfPrevious(
  info: Docker.ContainerInspectInfo,
  p: SwapContainerParams,
): HealthCheck | undefined {
  const labelled = healthFromLabel(info.Config.Labels?.[LABEL.health]);
  if (labelled) return labelled;
  if (info.Config.Healthcheck?.Test?.length && info.Config.Healthcheck.Test[0] !== "NONE") return undefined;
  if (p.order !== "stop-first" || !p.health) return undefined;
  if ("http" in p.health && p.health.http.expect?.body !== undefined) {
    const { body: _, ...expect } = p.health.http.expect;
    return { ...p.health, http: { ...p.health.http, expect } };
  }
  return p.health;
}

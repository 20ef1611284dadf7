import { AtomError, defineStep, type StepContext } from "@atomkit/core";
import { CONNECTION_SECRETS, type DockerClient, dockerClient } from "./_connection";
import { byName, call, dockerStatus, inspect, LABEL, remove, requireImage, start, stop } from "./_docker";
import { waitHealthy } from "./_health";
import { type ContainerSpec, createOptions, labelsFor, parseContainerSpec } from "./_spec";
import { type ContainerState, checkContainerState, observeContainer, sameFacts } from "./_state";

const KIND = "docker.run";

/** The options of `docker.run`: the container spec. */
export type RunContainerOptions = ContainerSpec;
/** `docker.run`'s options validated, defaults filled in. */
export type RunContainerParams = ContainerSpec & Required<Pick<ContainerSpec, "docker" | "stopTimeoutMs">>;

/**
 * `docker.run`: creates and starts a new container named `name` and waits for it to be healthy. The
 * name must be free: replacing a running container is `docker.swap`'s job.
 */
export const runContainer = defineStep({
  kind: KIND,
  package: "@atomkit/step-docker",
  params: (input: RunContainerOptions): RunContainerParams => {
    return parseContainerSpec(input);
  },
  secret: CONNECTION_SECRETS,
  describe: (p) => `run container ${p.name} from ${p.image}`,
  observe: (ctx, p): Promise<ContainerState> =>
    observeContainer(dockerClient(ctx.host, p.docker), p.name, ctx.signal),
  same: (a, b) => sameFacts(a.current, b.current),
  state: checkContainerState,

  async apply(ctx, p, before) {
    const c = dockerClient(ctx.host, p.docker);
    let id: string;
    if (before.current) {
      const info = await inspect(c, before.current.evidence.id, ctx.signal);
      // an earlier attempt of this same run created it: finish that attempt instead of failing
      if (info?.Config.Labels?.[LABEL.run] !== ctx.runId || info.Config.Labels?.[LABEL.kind] !== KIND) {
        throw new AtomError("ATOM_STEP_FAILED", `a container named ${p.name} exists already`, {
          expected: `no container named ${p.name}`,
          found: `${before.current.evidence.id.slice(0, 12)} (${before.current.image.ref}, ${before.current.running ? "running" : "stopped"})`,
          hint: "use docker.swap to replace a container, or docker.remove it first",
        });
      }
      id = info.Id;
    } else {
      await requireImage(c, p.image, ctx.signal);
      id = await create(c, ctx, p);
      ctx.log(`created ${p.name} (${id.slice(0, 12)}) from ${p.image}`);
    }
    await start(c, id, ctx.signal);
    await waitHealthy(c, id, p.health, {
      host: ctx.host,
      signal: ctx.signal,
      what: `container ${p.name}`,
      log: ctx.log,
    });
  },

  // cannot restore: nothing to restore (the name was free), but what the container wrote to its own
  // filesystem and anonymous volumes is deleted with it
  async undo(ctx, p, before, after) {
    if (before.current) return; // apply refused to touch an existing container
    const c = dockerClient(ctx.host, p.docker);
    const now = await observeContainer(c, p.name, ctx.signal);
    const made = new Map<string, string>(); // id (evidence) → name
    for (const x of [after?.current, now.current]) if (x) made.set(x.evidence.id, x.name);
    for (const [id, name] of made) {
      const info = await inspect(c, id, ctx.signal);
      if (!info) continue;
      // only a container these steps made for this name: a forged or mixed-up trail removes nothing else
      if (!info.Config.Labels?.[LABEL.kind] || info.Config.Labels[LABEL.name] !== p.name) {
        throw new AtomError(
          "ATOM_STEP_FAILED",
          `container ${name} was not created by Atomkit for ${p.name}; not removing it`,
          {
            found: `${id.slice(0, 12)} without org.atomkit labels for ${p.name}`,
            hint: "someone replaced the container by hand; inspect it and decide",
          },
        );
      }
      await stop(c, id, p.stopTimeoutMs, ctx.signal);
      await remove(c, id, ctx.signal);
      ctx.log(`removed ${name} (${id.slice(0, 12)})`);
    }
  },
});

async function create(c: DockerClient, ctx: StepContext, p: RunContainerParams): Promise<string> {
  try {
    const created = await call(
      c,
      `create container ${p.name}`,
      (s) =>
        c.docker.createContainer({ ...createOptions(p, p.name, labelsFor(ctx, KIND, p)), abortSignal: s }),
      ctx.signal,
    );
    return created.id;
  } catch (error) {
    if (dockerStatus(error) === 409) {
      const mine = await byName(c, p.name, ctx.signal);
      if (mine && mine.Config.Labels?.[LABEL.run] === ctx.runId) return mine.Id;
    }
    throw error;
  }
}

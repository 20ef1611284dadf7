// Helpers of docker.swap (swap.ts): its state, how it is observed and checked, and the containers a
// swap creates.
import { AtomError, type StepContext } from "@atomkit/core";
import { arrayOf, boolean, checkFields, nullable, string } from "@atomkit/core/kit";
import type Docker from "dockerode";
import type { DockerClient } from "./_connection";
import { byName, call, dockerStatus, LABEL, listByPrefix, remove } from "./_docker";
import { type ContainerHealthCheck, healthFromLabel } from "./_health";
import { type ContainerSpec, createOptions, labelsFor } from "./_spec";
import { type ContainerFacts, checkFacts, containerId, factsOf, stateName } from "./_state";

export const SWAP_KIND = "docker.swap";

/** The state of `docker.swap`: the container holding the name, and pending new containers as evidence. */
export interface SwapContainerState {
  /** The container holding the name, or null: what serves. */
  current: ContainerFacts | null;
  evidence: {
    /** New containers of swaps cut short (still named `<name>-next-<runId>`): they never served the name. */
    pending: PendingContainer[];
  };
}

/** A new container of a swap cut short (`<name>-next-<runId>`): evidence, never what serves. */
export interface PendingContainer {
  id: string;
  name: string;
  running: boolean;
  /** The run that made it (its `org.atomkit.run` label). */
  run: string | null;
}

export async function observeSwap(
  c: DockerClient,
  name: string,
  signal?: AbortSignal,
): Promise<SwapContainerState> {
  const current = await byName(c, name, signal);
  const pending: PendingContainer[] = [];
  for (const x of await listByPrefix(c, `${name}-next-`, signal)) {
    if (x.info.Labels?.[LABEL.name] !== name) continue;
    pending.push({
      id: x.info.Id,
      name: x.name,
      running: x.info.State === "running",
      run: x.info.Labels?.[LABEL.run] ?? null,
    });
  }
  return { current: current ? factsOf(current) : null, evidence: { pending } };
}

/** The exact shape of a docker.swap state read back from a trail. */
export function checkSwapState(value: unknown): SwapContainerState {
  return checkFields<SwapContainerState>(value, {
    current: nullable(checkFacts),
    evidence: (v, p) => checkFields(v, { pending: arrayOf(checkPending) }, p),
  }) as SwapContainerState;
}

function checkPending(value: unknown, path: string): PendingContainer {
  return checkFields<PendingContainer>(
    value,
    { id: containerId, name: stateName, running: boolean, run: nullable(string) },
    path,
  ) as PendingContainer;
}

/**
 * Refuses states that do not belong to this step's service (a trail edited or mixed up): undo removes
 * containers by the ids in them, so they must name `name` and its `-next-` containers only.
 */
export function refuseForeign(name: string, states: Array<SwapContainerState | undefined>): void {
  for (const s of states) {
    if (!s) continue;
    const names = [
      ...(s.current ? [s.current.name] : []),
      ...s.evidence.pending.map((x) => x.name).filter((n) => !n.startsWith(`${name}-next-`)),
    ].filter((n) => n !== name);
    if (names.length) {
      throw new AtomError("ATOM_STEP_FAILED", `the recorded state names containers of another service`, {
        expected: `container ${name} and ${name}-next-*`,
        found: names.join(", "),
        hint: "the trail does not match this step's params; inspect the trail, nothing was changed",
      });
    }
  }
}

/** Labels on a container these steps made for this service: the only kind undo ever removes. */
export function ours(info: Docker.ContainerInspectInfo, name: string): boolean {
  const labels = info.Config.Labels ?? {};
  return Boolean(labels[LABEL.kind]) && labels[LABEL.name] === name;
}

/** Creates under a temporary name; a retry after a lost answer finds its own container by label. */
export async function createContainer(c: DockerClient, ctx: StepContext, spec: ContainerSpec, name: string) {
  try {
    const created = await call(
      c,
      `create container ${name}`,
      (s) =>
        c.docker.createContainer({
          ...createOptions(spec, name, labelsFor(ctx, SWAP_KIND, spec)),
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

/** How long removing a never-served new container may take after a failure (the step's signal may be aborted). */
const DISCARD_MS = 10_000;

/**
 * After a failed apply: when the old container still holds the name as it did (or there was none and
 * the new one never got the name), the new one never served — remove it, so a swap that changed nothing
 * leaves nothing behind. Otherwise it stays for check and undo. Best effort: `cleanup` finds the rest.
 */
export async function discardUnserved(
  c: DockerClient,
  ctx: StepContext,
  name: string,
  created: string,
  old: { id: string; running: boolean } | null,
): Promise<void> {
  const signal = AbortSignal.timeout(DISCARD_MS);
  try {
    const holder = await byName(c, name, signal);
    const untouched = old
      ? holder?.Id === old.id && (holder.State.Running === true) === old.running
      : holder === null;
    if (!untouched) return;
    await remove(c, created, signal);
    ctx.log(`removed the new container ${created.slice(0, 12)}: it never served ${name}`);
  } catch {
    // left for undo (the state changed) or for cleanup (it did not)
  }
}

/**
 * How undo knows the previous container is back: the health check it was deployed with (a label), else
 * its Docker HEALTHCHECK, else — stop-first, where old and new share the port — this step's own check
 * without `expect.body` (which describes the new version, not the old one).
 */
export function healthOfPrevious(
  info: Docker.ContainerInspectInfo,
  p: { order: "stop-first" | "start-first"; health?: ContainerHealthCheck },
): ContainerHealthCheck | undefined {
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

import { AtomError, type StepContext } from "@atomkit/core";
import { type DockerClient, type DockerConnection, parseConnection } from "./_connection";
import { inspect, LABEL, start } from "./_docker";
import { type HealthCheck, healthFromLabel, parseHealth, waitHealthy } from "./_health";
import { parseName, parseStopTimeout } from "./_spec";
import { object, onlyKeys } from "./_validate";

// Shared by docker.stop and docker.remove: both act on one existing container and start it again on undo.

export interface SingleContainerOptions {
  docker?: DockerConnection;
  name: string;
  /** How long the stop waits before SIGKILL (whole seconds, rounded up). Default 10 000. */
  stopTimeoutMs?: number;
  /**
   * How undo knows the container is back. Default: the check it was deployed with by these steps (a
   * label), else its Docker HEALTHCHECK, else "still running after a second".
   */
  health?: HealthCheck;
}

export interface SingleContainerParams extends SingleContainerOptions {
  docker: DockerConnection;
  stopTimeoutMs: number;
}

export function parseSingle(input: unknown): SingleContainerParams {
  const o = object(input, "");
  onlyKeys(o, "", ["docker", "name", "stopTimeoutMs", "health"]);
  const health = parseHealth(o.health, "health");
  return {
    docker: parseConnection(o.docker),
    name: parseName(o.name),
    stopTimeoutMs: parseStopTimeout(o.stopTimeoutMs),
    ...(health ? { health } : {}),
  };
}

export function autoRemoveError(name: string): AtomError {
  return new AtomError("ATOM_STEP_FAILED", `container ${name} was started with --rm`, {
    expected: "a container that survives being stopped",
    found: "AutoRemove: stopping it deletes it, so this could not be undone",
    hint: "recreate it without --rm (e.g. with docker.run or docker.swap) first",
  });
}

/** Starts a container again by id and waits for its health: the undo of a stop. */
export async function restart(
  ctx: Pick<StepContext, "host" | "signal" | "log">,
  c: DockerClient,
  id: string,
  p: SingleContainerParams,
): Promise<void> {
  const info = await inspect(c, id, ctx.signal);
  if (!info) {
    throw new AtomError("ATOM_STEP_FAILED", `container ${p.name} (${id.slice(0, 12)}) is gone`, {
      expected: "the stopped container, to start it again",
      found: "no such container",
      hint: "it was removed since; recreate it (docker.run) from its image",
    });
  }
  const health = p.health ?? healthFromLabel(info.Config.Labels?.[LABEL.health]);
  await start(c, id, ctx.signal);
  await waitHealthy(c, id, health, {
    host: ctx.host,
    signal: ctx.signal,
    what: `container ${p.name}`,
    log: ctx.log,
  });
}

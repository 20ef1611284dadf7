import { AtomError, type StepContext } from "@atomkit/core";
import { checkFields } from "@atomkit/core/kit";
import { type DockerClient, type DockerConnection, parseConnection } from "./_connection";
import { byName, LABEL, start } from "./_docker";
import { type ContainerHealthCheck, healthFromLabel, parseHealth, waitHealthy } from "./_health";
import { parseName, parseStopTimeout } from "./_spec";
import { type ContainerFacts, differences, factsOf } from "./_state";

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
  health?: ContainerHealthCheck;
}

export interface SingleContainerParams extends SingleContainerOptions {
  docker: DockerConnection;
  stopTimeoutMs: number;
}

export function parseSingle(input: unknown): SingleContainerParams {
  return checkFields(input, {
    docker: (v, p) => parseConnection(v, p),
    name: parseName,
    stopTimeoutMs: parseStopTimeout,
    health: parseHealth,
  });
}

export function autoRemoveError(name: string): AtomError {
  return new AtomError("ATOM_STEP_FAILED", `container ${name} was started with --rm`, {
    expected: "a container that survives being stopped",
    found: "AutoRemove: stopping it deletes it, so this could not be undone",
    hint: "recreate it without --rm (e.g. with docker.run or docker.swap) first",
  });
}

/**
 * The undo of a stop: starts the container holding the name again and waits for its health. It must be
 * the one recorded (same image, config and labels; its id may differ: it is evidence), else this fails
 * loudly before starting anything.
 */
export async function restart(
  ctx: Pick<StepContext, "host" | "signal" | "log">,
  c: DockerClient,
  want: ContainerFacts,
  p: SingleContainerParams,
): Promise<void> {
  const info = await byName(c, p.name, ctx.signal);
  if (!info) {
    throw new AtomError(
      "ATOM_STEP_FAILED",
      `container ${p.name} (${want.evidence.id.slice(0, 12)}) is gone`,
      {
        expected: `the stopped container ${p.name}, to start it again`,
        found: "no container holds the name",
        hint: "it was removed or renamed since; recreate it (docker.run) from its image",
      },
    );
  }
  const diff = differences(factsOf(info), want, ["running"]);
  if (diff.length) {
    throw new AtomError("ATOM_STEP_FAILED", `container ${p.name} is not the one recorded before`, {
      expected: `${want.image.ref} as recorded (${want.evidence.id.slice(0, 12)})`,
      found: `${info.Id.slice(0, 12)} with a different ${diff.join(", ")}; nothing was started`,
      hint: "someone replaced it since; inspect it, then deploy what should run with docker.swap",
    });
  }
  const health = p.health ?? healthFromLabel(info.Config.Labels?.[LABEL.health]);
  await start(c, info.Id, ctx.signal);
  await waitHealthy(c, info.Id, health, {
    host: ctx.host,
    signal: ctx.signal,
    what: `container ${p.name}`,
    log: ctx.log,
  });
}

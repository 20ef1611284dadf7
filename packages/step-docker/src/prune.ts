import { type Host, localHost } from "@atomkit/core";
import { integer } from "@atomkit/core/kit";
import { type DockerConnection, dockerClient, parseConnection } from "./_connection";
import { inspect, listByPrefix, remove } from "./_docker";
import { parseName } from "./_spec";

/** Options of `pruneContainers`: the host and daemon, and how many old containers of a name to keep. */
export interface PruneContainersOptions {
  /** The machine whose daemon holds the containers, as the steps ran on. Default `localHost()`. */
  host?: Host;
  docker?: DockerConnection;
  /** The service name given to docker.swap / docker.remove. */
  name: string;
  /**
   * How many retired containers (`<name>-prev-*`, `<name>-removed-*`) to keep, newest first. Default 1:
   * the one the last committed swap would roll back to. `0` deletes that one too, so that run can no
   * longer be undone.
   */
  keep?: number;
  signal?: AbortSignal;
}

/** What `pruneContainers` removed. */
export interface PruneContainersResult {
  /** Names of the containers deleted. */
  removed: string[];
  kept: string[];
}

/**
 * Deletes old retired containers of a service, keeping the newest `keep`. Not a step: deleting is the
 * one thing no undo can take back, so it runs after a run committed. Running containers are never
 * deleted (someone started one again by hand).
 */
export async function pruneContainers(options: PruneContainersOptions): Promise<PruneContainersResult> {
  const name = parseName(options.name);
  const keep = options.keep === undefined ? 1 : integer(options.keep, "keep", { min: 0, max: 10_000 });
  const c = dockerClient(options.host ?? localHost(), parseConnection(options.docker));
  const retired = [];
  for (const prefix of [`${name}-prev-`, `${name}-removed-`]) {
    for (const x of await listByPrefix(c, prefix, options.signal)) {
      const info = await inspect(c, x.info.Id, options.signal);
      if (info && !info.State.Running)
        retired.push({ id: info.Id, name: x.name, at: info.State.FinishedAt ?? "" });
    }
  }
  // newest retirement first: the swap stopped it then
  retired.sort((a, b) => (a.at === b.at ? b.name.localeCompare(a.name) : b.at.localeCompare(a.at)));
  const result: PruneContainersResult = { removed: [], kept: [] };
  for (const [i, x] of retired.entries()) {
    if (i < keep) {
      result.kept.push(x.name);
      continue;
    }
    await remove(c, x.id, options.signal);
    result.removed.push(x.name);
  }
  return result;
}

import { AtomError, HostError, type HostErrorReason, isAtomError } from "@atomkit/core";
import { sleep } from "@atomkit/core/kit";
import type Docker from "dockerode";
import { type DockerClient, daemonUnreachable } from "./_connection";

/** Labels on every container these steps create, so leftovers can be found: `docker ps -a --filter label=org.atomkit.run`. */
export const LABEL = {
  kind: "org.atomkit.kind",
  step: "org.atomkit.step",
  run: "org.atomkit.run",
  name: "org.atomkit.name",
  health: "org.atomkit.health",
} as const;

/** A run id as it may appear in a container name (`[a-zA-Z0-9_.-]`). */
export function nameSafe(runId: string): string {
  return runId.replace(/[^a-zA-Z0-9_.-]/g, "-").slice(0, 80);
}

/** A 5xx answer is retried this long: a daemon shutting down answers 500s before it stops listening. */
const SERVER_ERROR_RETRY_MS = 5_000;

/**
 * One Docker API call. While the daemon is unreachable (restarting: socket gone, connection refused or
 * reset) the call is retried for up to the connection's `waitMs`, and a 5xx answer for a few seconds
 * (the calls made this way are safe to repeat: each caller accepts "already done"). Every other
 * failure becomes a HostError naming the daemon, what was attempted and Docker's own message.
 */
export async function call<T>(
  c: DockerClient,
  what: string,
  fn: (signal: AbortSignal) => Promise<T>,
  signal?: AbortSignal,
  options: { retryServerErrors?: boolean } = {},
): Promise<T> {
  const started = Date.now();
  const deadline = started + c.waitMs;
  for (;;) {
    if (signal?.aborted) throw signal.reason;
    // a signal per call: docker-modem leaves its listener on the signal it is given
    const ac = new AbortController();
    const onAbort = () => ac.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await fn(ac.signal);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const status = statusOf(error) ?? 0;
      const transient =
        unreachable(error) ||
        (options.retryServerErrors !== false &&
          status >= 500 &&
          Date.now() - started < SERVER_ERROR_RETRY_MS);
      if (transient && Date.now() < deadline) {
        await sleep(250, signal);
        continue;
      }
      throw apiError(c, what, error);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

export function statusOf(error: unknown): number | undefined {
  const s = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === "number" ? s : undefined;
}

/** The error behind a HostError made by `call`, for status checks (404, 409, 304). */
export function dockerStatus(error: unknown): number | undefined {
  return statusOf(error) ?? statusOf((error as { cause?: unknown } | null)?.cause);
}

function unreachable(error: unknown): boolean {
  if ((error as { permanent?: boolean } | null)?.permanent) return false;
  if (statusOf(error) !== undefined) return false;
  if (daemonUnreachable(error)) return true;
  const code = (error as { code?: unknown } | null)?.code;
  if (
    typeof code === "string" &&
    ["ECONNREFUSED", "ENOENT", "ECONNRESET", "EPIPE", "ECONNABORTED"].includes(code)
  ) {
    return true;
  }
  if (error instanceof HostError && error.reason === "CONNECTION") return true;
  return /socket hang up|ECONNRESET|ECONNREFUSED|Not connected|No response from server|closed/i.test(
    (error as Error)?.message ?? "",
  );
}

export function apiError(c: DockerClient, what: string, error: unknown): HostError {
  if (error instanceof HostError && error.host === c.name) return error;
  const status = statusOf(error);
  const json = (error as { json?: { message?: unknown } } | null)?.json;
  const text =
    typeof json?.message === "string" ? json.message : ((error as Error)?.message ?? String(error)).trim();
  const reason: HostErrorReason =
    status === 404 ? "ENOENT" : status === 409 ? "EEXIST" : status === undefined ? "CONNECTION" : "OTHER";
  const link = c.linkError();
  // the host itself failed (unreachable, key or login refused): its own error says where and why
  const hostFailed = link instanceof HostError && ["CONNECTION", "HOST_KEY", "AUTH"].includes(link.reason);
  if (status === undefined && hostFailed) return link;
  const message =
    status === undefined
      ? `${what}: the Docker daemon at ${c.name} is unreachable: ${link?.message ?? text}`
      : `${what}: Docker answered ${status}: ${text}`;
  return new HostError(reason, message, {
    host: c.name,
    cause: error,
    hint:
      status === undefined
        ? `start dockerd (or fix docker.socketPath, or the step's host); calls wait up to docker.waitMs (${c.waitMs} ms) for a restarting daemon`
        : undefined,
  });
}

export async function inspect(
  c: DockerClient,
  ref: string,
  signal?: AbortSignal,
): Promise<Docker.ContainerInspectInfo | null> {
  try {
    return await call(
      c,
      `inspect container ${ref}`,
      (s) => c.docker.getContainer(ref).inspect({ abortSignal: s }),
      signal,
    );
  } catch (error) {
    if (dockerStatus(error) === 404) return null;
    throw error;
  }
}

/** The container named exactly `name` (Docker would also resolve an id prefix; that is not a match). */
export async function byName(c: DockerClient, name: string, signal?: AbortSignal) {
  const info = await inspect(c, name, signal);
  return info && info.Name === `/${name}` ? info : null;
}

/** Containers whose name starts with `prefix`, sorted by name. */
export async function listByPrefix(c: DockerClient, prefix: string, signal?: AbortSignal) {
  const list = await call(
    c,
    `list containers named ${prefix}*`,
    (s) =>
      c.docker.listContainers({ all: true, filters: { name: [`^/${escapeRe(prefix)}`] }, abortSignal: s }),
    signal,
  );
  return list
    .map((x) => ({ info: x, name: (x.Names?.[0] ?? "").replace(/^\//, "") }))
    .filter((x) => x.name.startsWith(prefix))
    .sort((a, b) => a.name.localeCompare(b.name));
}

export async function start(c: DockerClient, id: string, signal?: AbortSignal): Promise<void> {
  try {
    await call(
      c,
      `start container ${id.slice(0, 12)}`,
      (s) => c.docker.getContainer(id).start({ abortSignal: s }),
      signal,
    );
  } catch (error) {
    if (dockerStatus(error) !== 304) throw error; // already running
  }
}

export async function stop(
  c: DockerClient,
  id: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  try {
    await call(
      c,
      `stop container ${id.slice(0, 12)}`,
      (s) => c.docker.getContainer(id).stop({ t: Math.ceil(timeoutMs / 1000), abortSignal: s }),
      signal,
    );
  } catch (error) {
    const s = dockerStatus(error);
    if (s !== 304 && s !== 404) throw error; // already stopped, or gone
  }
}

/** Renames by id; a retry after a lost answer finds it already renamed. */
export async function rename(c: DockerClient, id: string, name: string, signal?: AbortSignal): Promise<void> {
  try {
    await call(
      c,
      `rename container ${id.slice(0, 12)} to ${name}`,
      () => c.docker.getContainer(id).rename({ name }),
      signal,
    );
  } catch (error) {
    const info = await inspect(c, id, signal);
    if (info?.Name === `/${name}`) return;
    throw error;
  }
}

/** Removes a container with its anonymous volumes; gone already is fine. */
export async function remove(c: DockerClient, id: string, signal?: AbortSignal): Promise<void> {
  try {
    await call(
      c,
      `remove container ${id.slice(0, 12)}`,
      () => c.docker.getContainer(id).remove({ force: true, v: true }),
      signal,
    );
  } catch (error) {
    if (dockerStatus(error) !== 404 && !/already in progress/i.test(String((error as Error).message)))
      throw error;
  }
}

/** The image must be on the daemon before a container is touched: fail while nothing has changed. */
export async function requireImage(c: DockerClient, ref: string, signal?: AbortSignal): Promise<void> {
  try {
    await call(c, `inspect image ${ref}`, () => c.docker.getImage(ref).inspect(), signal);
  } catch (error) {
    if (dockerStatus(error) !== 404) throw error;
    throw new AtomError("ATOM_STEP_FAILED", `image ${ref} is not on the Docker daemon ${c.name}`, {
      expected: `image ${ref} present`,
      found: "no such image",
      hint: "put a docker.image step before this one (load it from a tar file, or pull it)",
    });
  }
}

/** The last lines a container wrote (stdout and stderr), for an error message. */
export async function logsTail(c: DockerClient, id: string, lines = 15): Promise<string> {
  try {
    const raw = (await c.docker
      .getContainer(id)
      .logs({ stdout: true, stderr: true, tail: lines, follow: false })) as unknown as Buffer;
    return demux(Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw)))
      .trim()
      .slice(-2000);
  } catch {
    return "";
  }
}

/** Docker's multiplexed stream (8-byte frame headers) as plain text; a TTY stream passes through. */
export function demux(buf: Buffer): string {
  const parts: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length) {
    const type = buf[i];
    if (type === undefined || type > 2 || buf[i + 1] !== 0 || buf[i + 2] !== 0 || buf[i + 3] !== 0) {
      return buf.toString("utf8");
    }
    const n = buf.readUInt32BE(i + 4);
    parts.push(buf.subarray(i + 8, i + 8 + n));
    i += 8 + n;
  }
  return Buffer.concat(parts).toString("utf8");
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

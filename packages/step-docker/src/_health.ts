import { AtomError, type Host } from "@atomkit/core";
import {
  argv,
  HEALTH_DEFAULTS,
  type HealthParams,
  type HttpExpect,
  healthChecks,
  type HttpCheck as KitHttpCheck,
  ParamsFieldError,
  pollHealth,
  show,
  type TcpCheck,
} from "@atomkit/core/kit";
import type { DockerClient } from "./_connection";
import { call, demux, inspect, logsTail } from "./_docker";

/**
 * When a container counts as healthy. Exactly one of `http`, `tcp`, `exec`, `docker`. Without a health
 * check a container only has to keep running for a second — or, when its image or `healthcheck` defines
 * a Docker HEALTHCHECK, to become `healthy`. `http` and `tcp` are the shared probes of
 * `@atomkit/core/kit` (the same as step-process's).
 */
export type ContainerHealthCheck = (
  | { http: ContainerHttpCheck }
  | { tcp: TcpCheck }
  /** A command run inside the container (`docker exec`): exit code 0 is healthy. Works with network "none". */
  | { exec: string[] }
  /** Docker's own HEALTHCHECK status (from the image, or the step's `healthcheck`) must become `healthy`. */
  | { docker: true }
) & {
  /** Give up after this long. Default 30 000. */
  timeoutMs?: number;
  /** Between probes. Default 250. */
  intervalMs?: number;
};

/**
 * `GET path` over HTTP/1.0 to a port of the host (127.0.0.1 unless `hostname` says otherwise), through
 * `host.connect` (over SSH on a remote host). `expect.status`: a code, a class (`"2xx"`, the default)
 * or a list; `expect.body`: a text the body must contain.
 */
export interface ContainerHttpCheck extends Omit<KitHttpCheck, "expect" | "body"> {
  expect?: HttpExpect;
}

/** step-docker's own kinds beside the kit's `http` and `tcp`. */
const KINDS = {
  exec: {
    check: argv,
    describe: (cmd: string[]) => `exit code 0 from ${JSON.stringify(cmd)} in the container`,
  },
  docker: {
    check: (v: unknown, p: string) => {
      if (v !== true) throw new ParamsFieldError(p, `expected true, found ${show(v)}`);
      return true as const;
    },
    describe: () => "Docker health status healthy",
  },
};
const checks = healthChecks(KINDS);
type Health = HealthParams<typeof KINDS>;

/** Without any health check, a container must still run after this long. */
const SETTLE_MS = 1_000;

export function parseHealth(value: unknown, path: string): ContainerHealthCheck | undefined {
  return checks.parse(value, path);
}

/** Reads a health check stored in a container label by an earlier run; a damaged label counts as none. */
export function healthFromLabel(text: string | undefined): ContainerHealthCheck | undefined {
  if (!text) return undefined;
  try {
    return parseHealth(JSON.parse(text), "label");
  } catch {
    return undefined;
  }
}

export interface WaitOptions {
  host: Host;
  signal: AbortSignal;
  /** For messages, e.g. `new container web-next-…`. */
  what: string;
  log?: (message: string) => void;
}

/**
 * Waits until the container is healthy. Fails fast when it exits (with its exit code and last log
 * lines) or Docker reports it `unhealthy`; otherwise after `timeoutMs`, with the last probe's failure.
 */
export async function waitHealthy(
  c: DockerClient,
  id: string,
  health: ContainerHealthCheck | undefined,
  o: WaitOptions,
): Promise<void> {
  // checked again: a check derived from a label or from the step's own (undo) has its defaults filled
  const h: Health | undefined = health && checks.parse(health, "health");
  const timing = h ?? HEALTH_DEFAULTS;
  const started = Date.now();
  const r = await pollHealth({
    timeoutMs: timing.timeoutMs,
    intervalMs: timing.intervalMs,
    signal: o.signal,
    round: async (timeoutMs) => {
      const dockerHealth = await running(c, id, o, h);
      if (!h) {
        // no check given: Docker's HEALTHCHECK when there is one, else "still running after a second"
        return dockerHealth
          ? { ok: dockerHealth === "healthy", found: `Docker health status ${dockerHealth}` }
          : { ok: Date.now() - started >= SETTLE_MS, found: "still settling" };
      }
      if ("docker" in h) {
        if (!dockerHealth) {
          throw new AtomError("ATOM_STEP_FAILED", `${o.what} has no Docker HEALTHCHECK to wait for`, {
            expected: "a HEALTHCHECK in the image or the step's `healthcheck`",
            found: "none",
            hint: "set `healthcheck: { test: [...] }` on the step, or use an http/tcp/exec health check",
          });
        }
        return { ok: dockerHealth === "healthy", found: `Docker health status ${dockerHealth}` };
      }
      return checks.probe(
        h,
        { host: o.host, timeoutMs, signal: o.signal },
        { exec: (cmd, p) => execProbe(c, id, cmd, p.signal ?? o.signal) },
      );
    },
  });
  if (r.ok) {
    o.log?.(`${o.what} is healthy after ${r.elapsedMs} ms`);
    return;
  }
  throw new AtomError("ATOM_STEP_FAILED", `${o.what} was not healthy within ${timing.timeoutMs} ms`, {
    expected: h ? checks.describe(h) : "running and settled",
    found: r.found,
    hint: "check that the container listens where the health check looks (host network: 127.0.0.1:port), or raise health.timeoutMs",
  });
}

/**
 * The container's Docker health status (undefined without a HEALTHCHECK) while it runs; throws when it
 * is gone, has exited, or Docker calls it unhealthy and that is what the wait is for.
 */
async function running(c: DockerClient, id: string, o: WaitOptions, h: Health | undefined) {
  const info = await inspect(c, id, o.signal);
  if (!info) {
    throw new AtomError("ATOM_STEP_FAILED", `${o.what} disappeared while waiting for it to be healthy`, {
      expected: "the container running and healthy",
      found: "no such container",
      hint: "someone (or --rm / AutoRemove) removed it; check `docker events`",
    });
  }
  const state = info.State;
  if (!state.Running) {
    const logs = await logsTail(c, id);
    throw new AtomError("ATOM_STEP_FAILED", `${o.what} exited before it was healthy`, {
      expected: "the container running and healthy",
      found: `exited with code ${state.ExitCode}${state.Error ? ` (${state.Error})` : ""}${logs ? `; last output:\n${logs}` : ""}`,
      hint: "check the image, cmd and env: run the container by hand and read its output",
    });
  }
  const dockerHealth: string | undefined = state.Health?.Status;
  if (dockerHealth === "unhealthy" && (!h || "docker" in h)) {
    const log = state.Health?.Log?.at(-1)?.Output?.trim();
    throw new AtomError("ATOM_STEP_FAILED", `${o.what} is unhealthy (Docker HEALTHCHECK)`, {
      expected: "Docker health status healthy",
      found: `unhealthy${log ? `; last check output: ${log.slice(0, 500)}` : ""}`,
      hint: "fix the service or its HEALTHCHECK",
    });
  }
  return dockerHealth;
}

/** `docker exec` of `cmd` in the container: healthy on exit code 0. The probe's signal ends it. */
async function execProbe(c: DockerClient, id: string, cmd: string[], signal: AbortSignal) {
  const exec = await call(
    c,
    "create health exec",
    () => c.docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true }),
    signal,
  );
  const stream = (await call(
    c,
    "start health exec",
    () => exec.start({ Detach: false, Tty: false }),
    signal,
  )) as NodeJS.ReadableStream & { destroy?: () => void };
  const chunks: Buffer[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      stream.on("data", (d: Buffer) => {
        if (chunks.length < 64) chunks.push(d);
      });
      stream.once("end", () => resolve());
      stream.once("close", () => resolve());
      stream.once("error", reject);
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  } finally {
    stream.destroy?.();
  }
  const r = await call(c, "inspect health exec", () => exec.inspect(), signal);
  const out = demux(Buffer.concat(chunks)).trim().slice(-300);
  if (r.ExitCode === 0) return { ok: true, found: "exit code 0" };
  return { ok: false, found: `exit code ${r.ExitCode}${out ? `: ${out}` : ""}` };
}

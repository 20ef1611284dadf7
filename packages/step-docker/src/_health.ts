import { AtomError, checkFields, type Host, optional } from "@atomkit/core";
import type { DockerClient } from "./_connection";
import { call, demux, inspect, logsTail, sleep } from "./_docker";
import { anyString, argv, fail, int } from "./_validate";

/**
 * When a container counts as healthy. Exactly one of `http`, `tcp`, `exec`, `docker`. Without a health
 * check a container only has to keep running for a second — or, when its image or `healthcheck` defines
 * a Docker HEALTHCHECK, to become `healthy`.
 */
export type HealthCheck = (
  | { http: HttpCheck }
  | { tcp: { port: number } }
  /** A command run inside the container (`docker exec`): exit code 0 is healthy. Works with network "none". */
  | { exec: string[] }
  /** Docker's own HEALTHCHECK status (from the image, or the step's `healthcheck`) must become `healthy`. */
  | { docker: true }
) & {
  /** Give up after this long. Default 30 000. */
  timeoutMs?: number;
  /** Between probes. Default 100. */
  intervalMs?: number;
};

export interface HttpCheck {
  /** A port on 127.0.0.1 of the host, reached through `host.connect` (over SSH on a remote host). */
  port: number;
  /** Default `/`. */
  path?: string;
  /** Default: any 2xx or 3xx status. `body`: a text the response body must contain. */
  expect?: { status?: number; body?: string };
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_INTERVAL_MS = 100;
/** Without any health check, a container must still run after this long. */
const SETTLE_MS = 1_000;
const PROBE_TIMEOUT_MS = 2_000;

export function parseHealth(value: unknown, path: string): HealthCheck | undefined {
  if (value === undefined) return undefined;
  const o = checkFields(
    value,
    {
      http: optional(parseHttp),
      tcp: optional((v, p) => checkFields(v, { port: (x, q) => int(x, q, 1, 65_535) }, p)),
      exec: optional(argv),
      docker: optional((v, p) => {
        if (v !== true) fail(p, `must be true, got ${JSON.stringify(v)}`);
        return true as const;
      }),
      timeoutMs: optional((v, p) => int(v, p, 1, 3_600_000)),
      intervalMs: optional((v, p) => int(v, p, 1, 600_000)),
    },
    path,
  );
  const kinds = (["http", "tcp", "exec", "docker"] as const).filter((k) => o[k] !== undefined);
  if (kinds.length !== 1) {
    fail(
      path,
      `needs exactly one of http, tcp, exec, docker; got ${kinds.length ? kinds.join(" and ") : "none"}`,
    );
  }
  const common = {
    ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    ...(o.intervalMs !== undefined ? { intervalMs: o.intervalMs } : {}),
  };
  if (o.http) return { http: o.http, ...common };
  if (o.tcp) return { tcp: o.tcp, ...common };
  if (o.exec) return { exec: o.exec, ...common };
  return { docker: true, ...common };
}

function parseHttp(value: unknown, path: string): HttpCheck {
  return checkFields(
    value,
    {
      port: (v, p) => int(v, p, 1, 65_535),
      path: optional((v, p) => {
        // it goes into a request line: no spaces or line breaks that could smuggle a header
        const text = anyString(v, p);
        if (!/^\/[\x21-\x7e]*$/.test(text))
          fail(p, `must start with / and hold no spaces or control characters, got ${JSON.stringify(text)}`);
        return text;
      }),
      expect: optional((v, p) =>
        checkFields(
          v,
          {
            status: optional((x, q) => int(x, q, 100, 599)),
            body: optional(anyString),
          },
          p,
        ),
      ),
    },
    path,
  );
}

/** Reads a health check stored in a container label by an earlier run; a damaged label counts as none. */
export function healthFromLabel(text: string | undefined): HealthCheck | undefined {
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
  health: HealthCheck | undefined,
  o: WaitOptions,
): Promise<void> {
  const started = Date.now();
  const timeoutMs = health?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const interval = health?.intervalMs ?? DEFAULT_INTERVAL_MS;
  let last = "no probe has run yet";
  for (;;) {
    if (o.signal.aborted) throw o.signal.reason;
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
    const dockerHealth = state.Health?.Status;
    let ok = false;
    if (!health) {
      // no check given: Docker's HEALTHCHECK when there is one, else "still running after a second"
      ok = dockerHealth ? dockerHealth === "healthy" : Date.now() - started >= SETTLE_MS;
      last = dockerHealth ? `Docker health status ${dockerHealth}` : "still settling";
    } else if ("docker" in health) {
      if (!dockerHealth) {
        throw new AtomError("ATOM_STEP_FAILED", `${o.what} has no Docker HEALTHCHECK to wait for`, {
          expected: "a HEALTHCHECK in the image or the step's `healthcheck`",
          found: "none",
          hint: "set `healthcheck: { test: [...] }` on the step, or use an http/tcp/exec health check",
        });
      }
      ok = dockerHealth === "healthy";
      last = `Docker health status ${dockerHealth}`;
    } else {
      const remaining = started + timeoutMs - Date.now();
      const r = await probe(c, id, health, o, Math.min(PROBE_TIMEOUT_MS, Math.max(250, remaining)));
      ok = r.ok;
      last = r.detail;
    }
    if (dockerHealth === "unhealthy" && (!health || "docker" in health)) {
      const log = state.Health?.Log?.at(-1)?.Output?.trim();
      throw new AtomError("ATOM_STEP_FAILED", `${o.what} is unhealthy (Docker HEALTHCHECK)`, {
        expected: "Docker health status healthy",
        found: `unhealthy${log ? `; last check output: ${log.slice(0, 500)}` : ""}`,
        hint: "fix the service or its HEALTHCHECK",
      });
    }
    if (ok) {
      o.log?.(`${o.what} is healthy after ${Date.now() - started} ms`);
      return;
    }
    if (Date.now() - started >= timeoutMs) {
      throw new AtomError("ATOM_STEP_FAILED", `${o.what} was not healthy within ${timeoutMs} ms`, {
        expected: health ? describeHealth(health) : "running and settled",
        found: last,
        hint: "check that the container listens where the health check looks (host network: 127.0.0.1:port), or raise health.timeoutMs",
      });
    }
    await sleep(interval, o.signal);
  }
}

export function describeHealth(h: HealthCheck): string {
  if ("http" in h)
    return `HTTP ${h.http.expect?.status ?? "2xx/3xx"} from 127.0.0.1:${h.http.port}${h.http.path ?? "/"}`;
  if ("tcp" in h) return `a TCP connection to 127.0.0.1:${h.tcp.port}`;
  if ("exec" in h) return `exit code 0 from ${JSON.stringify(h.exec)} in the container`;
  return "Docker health status healthy";
}

async function probe(
  c: DockerClient,
  id: string,
  health: HealthCheck,
  o: WaitOptions,
  timeoutMs: number,
): Promise<{ ok: boolean; detail: string }> {
  // a signal per probe: a refused net.connect leaves its abort listener on the signal it was given
  const ac = new AbortController();
  const onAbort = () => ac.abort(o.signal.reason);
  o.signal.addEventListener("abort", onAbort, { once: true });
  try {
    if ("http" in health) return await httpProbe(o.host, health.http, timeoutMs, ac.signal);
    if ("tcp" in health) {
      const socket = await withTimeout(
        o.host.connect(health.tcp.port, { signal: ac.signal }),
        timeoutMs,
        "connect",
      );
      socket.destroy();
      return { ok: true, detail: "connected" };
    }
    if ("exec" in health) return await execProbe(c, id, health.exec, timeoutMs, ac.signal);
    return { ok: false, detail: "no probe" };
  } catch (error) {
    return { ok: false, detail: (error as Error)?.message ?? String(error) };
  } finally {
    o.signal.removeEventListener("abort", onAbort);
  }
}

async function httpProbe(
  host: Host,
  check: HttpCheck,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<{ ok: boolean; detail: string }> {
  const socket = await withTimeout(host.connect(check.port, { signal }), timeoutMs, "connect");
  try {
    const text = await withTimeout(
      new Promise<string>((resolve, reject) => {
        let out = "";
        socket.on("data", (d: Buffer) => {
          out += d.toString("utf8");
          if (out.length > 65_536) resolve(out);
        });
        socket.once("end", () => resolve(out));
        socket.once("close", () => resolve(out));
        socket.once("error", reject);
        socket.write(
          `GET ${check.path ?? "/"} HTTP/1.0\r\nHost: 127.0.0.1:${check.port}\r\nUser-Agent: atomkit-health\r\nConnection: close\r\n\r\n`,
        );
      }),
      timeoutMs,
      "response",
    );
    const m = /^HTTP\/\d\.\d (\d{3})/.exec(text);
    if (!m) return { ok: false, detail: `not an HTTP response: ${JSON.stringify(text.slice(0, 80))}` };
    const status = Number(m[1]);
    const body = text.slice(text.indexOf("\r\n\r\n") + 4);
    const want = check.expect?.status;
    if (want !== undefined ? status !== want : status < 200 || status >= 400) {
      return { ok: false, detail: `HTTP ${status}` };
    }
    if (check.expect?.body !== undefined && !body.includes(check.expect.body)) {
      return {
        ok: false,
        detail: `HTTP ${status}, body without ${JSON.stringify(check.expect.body)}: ${JSON.stringify(body.slice(0, 120))}`,
      };
    }
    return { ok: true, detail: `HTTP ${status}` };
  } finally {
    socket.destroy();
  }
}

async function execProbe(
  c: DockerClient,
  id: string,
  cmd: string[],
  timeoutMs: number,
  signal: AbortSignal,
): Promise<{ ok: boolean; detail: string }> {
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
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        stream.on("data", (d: Buffer) => {
          if (chunks.length < 64) chunks.push(d);
        });
        stream.once("end", () => resolve());
        stream.once("close", () => resolve());
        stream.once("error", reject);
      }),
      timeoutMs,
      "health exec",
    );
  } finally {
    stream.destroy?.();
  }
  const r = await call(c, "inspect health exec", () => exec.inspect(), signal);
  const out = demux(Buffer.concat(chunks)).trim().slice(-300);
  if (r.ExitCode === 0) return { ok: true, detail: "exit code 0" };
  return { ok: false, detail: `exit code ${r.ExitCode}${out ? `: ${out}` : ""}` };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(new Error(`${what} timed out after ${ms} ms`));
    }, ms);
  });
  // a socket that arrives after the timeout must not leak
  promise.then(
    (v) => {
      if (late && v && typeof (v as { destroy?: unknown }).destroy === "function") {
        (v as unknown as { destroy: () => void }).destroy();
      }
    },
    () => {},
  );
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

import { type Host, optional, show } from "@atomkit/core";
import { argvOf, checkFields, invalid, msOf, portOf, regexOf, sleep } from "./_utils";

/**
 * How to tell the process is ready. Exactly one of `http`, `tcp`, `exec`, `logLine`, plus timing.
 * Probes go through the Host: `http` and `tcp` use `host.connect(port)` (a direct-tcpip channel over
 * SSH), so the host needs no curl.
 */
export type HealthCheck = (
  | {
      /** Healthy when `GET path` over HTTP/1.0 answers `expect` (default: any 2xx) and contains `body`. */
      http: { port: number; path?: string; expect?: number; body?: string; hostname?: string };
    }
  | { /** Healthy when a TCP connection to the port succeeds. */ tcp: { port: number; hostname?: string } }
  | {
      /** Healthy when this argv exits 0 (run on the host, in the process's working directory). */ exec: string[];
    }
  | {
      /** Healthy when a line written to the log since the start matches this regular expression. */
      logLine: string;
    }
) & {
  /** How long to wait for the first healthy answer. Default 30 000. */
  timeoutMs?: number;
  /** Pause between probes. Default 250. */
  intervalMs?: number;
};

export type NormalizedHealth = (
  | { http: { port: number; path: string; expect?: number; body?: string; hostname: string } }
  | { tcp: { port: number; hostname: string } }
  | { exec: string[] }
  | { logLine: string }
) & { timeoutMs: number; intervalMs: number };

const KINDS = ["http", "tcp", "exec", "logLine"] as const;

export function healthOf(value: unknown, path: string): NormalizedHealth | undefined {
  if (value === undefined) return undefined;
  const h = checkFields(
    value,
    {
      http: optional(httpOf),
      tcp: optional(tcpOf),
      exec: optional(argvOf),
      logLine: optional(regexOf),
      timeoutMs: (v, p) => msOf(v, p, 30_000, 1),
      intervalMs: (v, p) => msOf(v, p, 250, 1),
    },
    path,
  );
  const kinds = KINDS.filter((k) => h[k] !== undefined);
  if (kinds.length !== 1) {
    invalid(
      path,
      `expected exactly one of ${KINDS.join(", ")}, found ${kinds.length ? kinds.join(" and ") : "none"}`,
    );
  }
  const timing = { timeoutMs: h.timeoutMs, intervalMs: h.intervalMs };
  if (h.http) return { http: h.http, ...timing };
  if (h.tcp) return { tcp: h.tcp, ...timing };
  if (h.exec) return { exec: h.exec, ...timing };
  return { logLine: h.logLine!, ...timing };
}

function httpOf(value: unknown, path: string) {
  const h = checkFields(
    value,
    {
      port: portOf,
      // the path goes into the request line: no spaces or line breaks that would forge another header
      path: (v, p) => {
        const text = v ?? "/";
        if (typeof text !== "string" || !/^\/[\x21-\x7e]*$/.test(text)) {
          invalid(
            p,
            `expected a path starting with "/" with no spaces or control characters, found ${show(v)}`,
          );
        }
        return text;
      },
      expect: optional((v, p) => {
        if (typeof v !== "number" || !Number.isInteger(v) || v < 100 || v > 599) {
          invalid(p, `expected an HTTP status code, e.g. 200, found ${show(v)}`);
        }
        return v;
      }),
      body: optional((v, p) => {
        if (typeof v !== "string") invalid(p, `expected a string, found ${show(v)}`);
        return v;
      }),
      hostname: hostnameOf,
    },
    path,
  );
  const out: { port: number; path: string; expect?: number; body?: string; hostname: string } = {
    port: h.port,
    path: h.path,
    hostname: h.hostname,
  };
  if (h.expect !== undefined) out.expect = h.expect;
  if (h.body !== undefined) out.body = h.body;
  return out;
}

function tcpOf(value: unknown, path: string) {
  const t = checkFields(value, { port: portOf, hostname: hostnameOf }, path);
  return { port: t.port, hostname: t.hostname };
}

function hostnameOf(value: unknown, path: string): string {
  if (value === undefined) return "127.0.0.1";
  if (typeof value !== "string" || !/^[A-Za-z0-9.:-]+$/.test(value))
    invalid(path, `expected a host name or IP, found ${show(value)}`);
  return value;
}

export function describeHealth(h: NormalizedHealth): string {
  if ("http" in h) return `GET http://${h.http.hostname}:${h.http.port}${h.http.path}`;
  if ("tcp" in h) return `TCP ${h.tcp.hostname}:${h.tcp.port}`;
  if ("exec" in h) return `\`${h.exec.join(" ")}\` exits 0`;
  return `a log line matching /${h.logLine}/`;
}

export interface WaitOptions {
  host: Host;
  signal: AbortSignal;
  /** False once the process has exited: waiting ends at once. */
  alive: () => Promise<boolean>;
  cwd: string;
  /** Where `logLine` looks, and from which byte: output written before this start does not count. */
  logFile: string;
  logOffset: number;
  log: (message: string) => void;
}

export type WaitResult = { ok: true } | { ok: false; reason: "exited" | "timeout"; detail: string };

/** Probes until healthy, the process exits, or `timeoutMs` passes. The caller turns failure into an error. */
export async function waitHealthy(h: NormalizedHealth, o: WaitOptions): Promise<WaitResult> {
  const deadline = Date.now() + h.timeoutMs;
  let detail = "no probe finished";
  o.log(`waiting up to ${h.timeoutMs} ms for ${describeHealth(h)}`);
  for (;;) {
    if (o.signal.aborted) throw o.signal.reason;
    if (!(await o.alive())) return { ok: false, reason: "exited", detail };
    // one slow probe (a server that accepts and never answers) must not eat the whole budget silently
    const attemptMs = Math.max(100, Math.min(deadline - Date.now(), Math.max(1_000, 4 * h.intervalMs)));
    const r = await probe(h, o, attemptMs);
    if (r.ok) return { ok: true };
    detail = r.detail;
    const left = deadline - Date.now();
    if (left <= 0) {
      return (await o.alive())
        ? { ok: false, reason: "timeout", detail }
        : { ok: false, reason: "exited", detail };
    }
    await sleep(Math.min(h.intervalMs, left), o.signal);
  }
}

/** Without a health check: the process must stay up for `ms` (a crash at start is caught). */
export async function waitUptime(ms: number, o: Pick<WaitOptions, "alive" | "signal">): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (o.signal.aborted) throw o.signal.reason;
    if (!(await o.alive())) return false;
    const left = deadline - Date.now();
    if (left <= 0) return true;
    await sleep(Math.min(50, left), o.signal);
  }
}

// --- Probes ---

/** One probe, as observe makes it: http, tcp and exec only (a log line is an event, not a state). */
export function probeOnce(
  h: NormalizedHealth,
  o: { host: Host; cwd: string },
): Promise<{ ok: boolean; detail: string }> {
  const attemptMs = Math.min(h.timeoutMs, Math.max(1_000, 4 * h.intervalMs));
  return probe(h, { ...o, logFile: "/dev/null", logOffset: 0 }, attemptMs);
}

async function probe(
  h: NormalizedHealth,
  o: Pick<WaitOptions, "host" | "cwd" | "logFile" | "logOffset">,
  attemptMs: number,
): Promise<{ ok: boolean; detail: string }> {
  try {
    if ("http" in h) return await httpProbe(o.host, h.http, attemptMs);
    if ("tcp" in h) {
      const socket = await withTimeout(o.host.connect(h.tcp.port, { hostname: h.tcp.hostname }), attemptMs);
      socket.destroy();
      return { ok: true, detail: "connected" };
    }
    if ("exec" in h) {
      const r = await o.host.exec(h.exec, { cwd: o.cwd, reject: false, timeoutMs: attemptMs });
      const tail = r.stderr.trim().split("\n").slice(-2).join(" ");
      return {
        ok: r.code === 0,
        detail: r.code === 0 ? "exit 0" : `exit ${r.signal ?? r.code}${tail ? `: ${tail}` : ""}`,
      };
    }
    const re = new RegExp(h.logLine);
    const text = (await o.host.readFile(o.logFile)).subarray(o.logOffset).toString("utf8");
    const ok = text.split("\n").some((line) => re.test(line));
    return { ok, detail: ok ? "matched" : `no line matching /${h.logLine}/ in ${o.logFile} yet` };
  } catch (error) {
    return { ok: false, detail: (error as Error)?.message?.split("\n")[0] ?? String(error) };
  }
}

function withTimeout<T extends { destroy(): void }>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(new Error(`no connection within ${ms} ms`));
    }, ms);
  });
  // a connection that completes after the timeout must still be closed
  promise.then(
    (socket) => {
      if (late) socket.destroy();
    },
    () => {},
  );
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function httpProbe(
  host: Host,
  h: { port: number; path: string; expect?: number; body?: string; hostname: string },
  ms: number,
): Promise<{ ok: boolean; detail: string }> {
  const socket = await withTimeout(host.connect(h.port, { hostname: h.hostname }), ms);
  const response = await new Promise<string>((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString("utf8"));
    };
    const timer = setTimeout(finish, ms);
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > 64 * 1024) finish();
    });
    socket.once("end", finish);
    socket.once("close", finish);
    socket.once("error", finish);
    socket.write(
      `GET ${h.path} HTTP/1.0\r\nHost: ${h.hostname}:${h.port}\r\nUser-Agent: atomkit-health\r\nConnection: close\r\n\r\n`,
    );
  });
  const status = Number(/^HTTP\/\d(?:\.\d)? (\d{3})/.exec(response)?.[1]);
  if (!status) return { ok: false, detail: response ? "not an HTTP response" : `no answer within ${ms} ms` };
  const body = response.slice(response.indexOf("\r\n\r\n") + 4);
  const statusOk = h.expect === undefined ? status >= 200 && status < 300 : status === h.expect;
  if (!statusOk) return { ok: false, detail: `HTTP ${status}` };
  if (h.body !== undefined && !body.includes(h.body)) {
    return { ok: false, detail: `HTTP ${status} without ${JSON.stringify(h.body)} in the body` };
  }
  return { ok: true, detail: `HTTP ${status}` };
}

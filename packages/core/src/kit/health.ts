// Health probes shared by step kinds: "does the service answer?", asked through the Host. `http` and
// `tcp` go over `host.connect`, so on an SSH host the probe runs on the far side of the link (a
// direct-tcpip channel) and the host needs no curl. A provider adds kinds of its own (step-process:
// `exec`, `logLine`; step-docker: `exec` in the container, Docker's HEALTHCHECK) with
// `healthChecks({ ... })`; every kind then shares one validation, one timing and one wait loop.
//
// One meaning everywhere: healthy is any 2xx unless `expect.status` says otherwise; probes repeat
// every 250 ms; a wait gives up after 30 s; one probe gets at least 2 s (or 4 intervals).
import { sleep } from "../_utils";
import { integer } from "../authoring";
import { checkFields, type FieldChecks, optional, ParamsFieldError, show } from "../fields";
import type { Host } from "../host";

/** Defaults of every health check: how long to wait for a healthy answer, and the pause between probes. */
export const HEALTH_DEFAULTS = { timeoutMs: 30_000, intervalMs: 250 } as const;

/** A status class: `"2xx"` is 200 to 299. */
export type StatusClass = "1xx" | "2xx" | "3xx" | "4xx" | "5xx";
/** The statuses that count as healthy: one code, a class, or a list of both (`[200, "3xx"]`). */
export type StatusSpec = number | StatusClass | Array<number | StatusClass>;

/** What an HTTP answer must hold to count as healthy. */
export interface HttpExpect {
  /** Default `"2xx"`. */
  status?: StatusSpec;
  /** A text the body must contain (plain text, not a pattern: checks travel through trails as JSON). */
  body?: string;
}

/**
 * An HTTP health check as written in a deploy file: `GET path` over HTTP/1.0 to `hostname:port` as the
 * host sees it. The older forms `expect: 200` and a `body` beside `expect` are read as
 * `expect: { status: 200, body }`.
 */
export interface HttpCheck {
  port: number;
  /** Default `/`. Goes into the request line: no spaces or control characters. */
  path?: string;
  /** Default `127.0.0.1` (of the host, not of the machine running the deploy). */
  hostname?: string;
  /** Default: any 2xx. A number is the old form of `{ status }`. */
  expect?: HttpExpect | number;
  /** @deprecated Write `expect: { body }`; still read. */
  body?: string;
}

/** A TCP health check: healthy once a connection to `hostname:port` (as the host sees it) opens. */
export interface TcpCheck {
  port: number;
  /** Default `127.0.0.1`. */
  hostname?: string;
}

/** An `HttpCheck` validated, defaults filled in. */
export interface HttpCheckParams {
  port: number;
  path: string;
  hostname: string;
  expect: { status: StatusSpec; body?: string };
}

/** A `TcpCheck` validated, defaults filled in. */
export interface TcpCheckParams {
  port: number;
  hostname: string;
}

/** When to give up (`timeoutMs`, from the start of the wait) and how long to pause between probes. */
export interface HealthTiming {
  timeoutMs: number;
  intervalMs: number;
}

/** The outcome of one probe: `found` says what was seen (`HTTP 503`), for the "found" of an error. */
export interface ProbeResult {
  ok: boolean;
  found: string;
  /** The probe got no answer within its own timeout (`found` then says so). */
  timedOut?: boolean;
}

/** For one probe: the host it goes through, the most it may take, and the step's signal. */
export interface ProbeOptions {
  host: Host;
  timeoutMs: number;
  /** Aborting it makes the probe throw the signal's reason (a timeout of the probe itself is a result). */
  signal?: AbortSignal | undefined;
}

// --- Validation ---

const CLASSES: readonly StatusClass[] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

function fieldError(path: string, message: string): never {
  throw new ParamsFieldError(path, message);
}

function portOf(value: unknown, path: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65_535) {
    fieldError(path, `expected a TCP port from 1 to 65535, found ${show(value)}`);
  }
  return value;
}

function hostnameOf(value: unknown, path: string): string {
  if (value === undefined) return "127.0.0.1";
  if (typeof value !== "string" || !/^[A-Za-z0-9.:-]+$/.test(value)) {
    fieldError(path, `expected a host name or IP address, found ${show(value)}`);
  }
  return value;
}

function requestPathOf(value: unknown, path: string): string {
  if (value === undefined) return "/";
  // it goes into the request line: a space or line break would forge another header
  if (typeof value !== "string" || !/^\/[\x21-\x7e]*$/.test(value)) {
    fieldError(
      path,
      `expected a path starting with "/" without spaces or control characters, found ${show(value)}`,
    );
  }
  return value;
}

function statusOf(value: unknown, path: string): StatusSpec {
  const one = (v: unknown, p: string): number | StatusClass => {
    if (typeof v === "number" && Number.isInteger(v) && v >= 100 && v <= 599) return v;
    if (typeof v === "string" && (CLASSES as readonly string[]).includes(v)) return v as StatusClass;
    return fieldError(p, `expected an HTTP status (200) or class ("2xx"), found ${show(v)}`);
  };
  if (!Array.isArray(value)) return one(value, path);
  if (!value.length) fieldError(path, "expected at least one status, found an empty list");
  return value.map((v, i) => one(v, `${path}.${i}`));
}

function bodyOf(value: unknown, path: string): string {
  if (typeof value !== "string") fieldError(path, `expected a text the body contains, found ${show(value)}`);
  return value;
}

/** Whole milliseconds from 1 ms to a day; `fallback` when absent. */
const msOf = (value: unknown, path: string, fallback: number) =>
  integer(value, path, { min: 1, max: 86_400_000, fallback });

/** Validates an `HttpCheck` (field check for `checkFields`): the old forms are read, defaults filled. */
export function httpCheck(value: unknown, path: string): HttpCheckParams {
  const h = checkFields(
    value,
    {
      port: portOf,
      path: requestPathOf,
      hostname: hostnameOf,
      expect: optional((v, p) =>
        typeof v === "number"
          ? { status: statusOf(v, p) }
          : checkFields(v, { status: optional(statusOf), body: optional(bodyOf) }, p),
      ),
      body: optional(bodyOf),
    },
    path,
  );
  const expect: HttpCheckParams["expect"] = { status: h.expect?.status ?? "2xx" };
  if (h.body !== undefined && h.expect?.body !== undefined) {
    fieldError(`${path}.body`, "expected the body text once, in expect.body; found it in body too");
  }
  const body = h.expect?.body ?? h.body;
  if (body !== undefined) expect.body = body;
  return { port: h.port, path: h.path, hostname: h.hostname, expect };
}

/** Validates a `TcpCheck` (field check for `checkFields`), defaults filled. */
export function tcpCheck(value: unknown, path: string): TcpCheckParams {
  const t = checkFields(value, { port: portOf, hostname: hostnameOf }, path);
  return { port: t.port, hostname: t.hostname };
}

// --- Probes ---

/** Whether `status` is one `spec` allows. */
export function statusMatches(status: number, spec: StatusSpec): boolean {
  const list = Array.isArray(spec) ? spec : [spec];
  return list.some((s) => (typeof s === "number" ? s === status : Math.floor(status / 100) === Number(s[0])));
}

/** What healthy means for this check, for the "expected" of an error: `HTTP 2xx from GET http://…`. */
export function describeHttp(h: HttpCheckParams): string {
  const status = Array.isArray(h.expect.status) ? h.expect.status.join(" or ") : String(h.expect.status);
  const body = h.expect.body !== undefined ? ` with ${show(h.expect.body)} in the body` : "";
  return `HTTP ${status} from GET http://${h.hostname}:${h.port}${h.path}${body}`;
}

/** What healthy means for this check: `a TCP connection to 127.0.0.1:5432`. */
export function describeTcp(h: TcpCheckParams): string {
  return `a TCP connection to ${h.hostname}:${h.port}`;
}

/** One TCP probe through `host.connect`: healthy once the connection opens (it is closed at once). */
export function probeTcp(check: TcpCheckParams, o: ProbeOptions): Promise<ProbeResult> {
  const where = `${check.hostname}:${check.port}`;
  return guarded(
    o,
    () => `no connection to ${where} within ${o.timeoutMs} ms`,
    async (signal) => {
      const socket = await connect(o.host, check, signal);
      socket.destroy();
      return { ok: true, found: `a connection to ${where}` };
    },
  );
}

/** Answers kept for judging: enough for the status line, headers and the start of the body. */
const MAX_ANSWER = 64 * 1024;

/** One HTTP probe through `host.connect`: `GET path` over HTTP/1.0, judged by `expect`. */
export function probeHttp(check: HttpCheckParams, o: ProbeOptions): Promise<ProbeResult> {
  const where = `${check.hostname}:${check.port}`;
  let connected = false;
  return guarded(
    o,
    () =>
      connected
        ? `no HTTP answer from ${where} within ${o.timeoutMs} ms`
        : `no connection to ${where} within ${o.timeoutMs} ms`,
    async (signal) => {
      const socket = await connect(o.host, check, signal);
      connected = true;
      try {
        const answer = await new Promise<Buffer>((resolve, reject) => {
          const chunks: Buffer[] = [];
          let size = 0;
          const done = () => resolve(Buffer.concat(chunks));
          // a server that sent its status line and then stalls is judged on what it sent
          signal.addEventListener("abort", () => (size ? done() : reject(signal.reason)), { once: true });
          socket.on("data", (chunk: Buffer) => {
            chunks.push(chunk);
            size += chunk.length;
            if (size > MAX_ANSWER || complete(Buffer.concat(chunks))) done();
          });
          socket.once("end", done);
          socket.once("close", done);
          socket.once("error", (error) => (size ? done() : reject(error)));
          socket.write(
            `GET ${check.path} HTTP/1.0\r\nHost: ${where}\r\nUser-Agent: atomkit-health\r\nConnection: close\r\n\r\n`,
          );
        });
        return judge(answer.toString("utf8"), check);
      } finally {
        socket.destroy();
      }
    },
  );
}

/** Whether an answer with a Content-Length has all of it (a server may keep the connection open). */
function complete(answer: Buffer): boolean {
  const end = answer.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(answer.subarray(0, end).toString("latin1"))?.[1];
  return length !== undefined && answer.length - end - 4 >= Number(length);
}

function judge(text: string, check: HttpCheckParams): ProbeResult {
  const status = Number(/^HTTP\/\d(?:\.\d)? (\d{3})/.exec(text)?.[1]);
  if (!status) {
    return {
      ok: false,
      found: text
        ? `not an HTTP answer: ${show(text.slice(0, 80))}`
        : "the connection closed without an answer",
    };
  }
  if (!statusMatches(status, check.expect.status)) return { ok: false, found: `HTTP ${status}` };
  const end = text.indexOf("\r\n\r\n");
  const body = end < 0 ? "" : text.slice(end + 4);
  const want = check.expect.body;
  if (want !== undefined && !body.includes(want)) {
    return {
      ok: false,
      found: `HTTP ${status} without ${show(want)} in the body: ${show(body.slice(0, 120))}`,
    };
  }
  return { ok: true, found: `HTTP ${status}` };
}

/** `host.connect` that gives up when `signal` aborts, closing a connection that opens too late. */
function connect(host: Host, to: { port: number; hostname: string }, signal: AbortSignal) {
  const opening = host.connect(to.port, { hostname: to.hostname, signal });
  return new Promise<Awaited<typeof opening>>((resolve, reject) => {
    // not every Host stops opening on abort (an SSH channel request cannot be withdrawn)
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    opening.then(
      (socket) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) socket.destroy();
        else resolve(socket);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/**
 * Runs one probe with its own signal: aborted after `o.timeoutMs` (the probe then fails with
 * `timedOut()`) or when `o.signal` aborts (the probe then throws its reason). Any other error is a
 * failed probe, its first line the "found". A signal per probe also keeps listeners from piling up
 * on the step's signal over hundreds of probes.
 */
async function guarded(
  o: ProbeOptions,
  timedOut: () => string,
  run: (signal: AbortSignal) => Promise<ProbeResult>,
): Promise<ProbeResult> {
  o.signal?.throwIfAborted();
  const ac = new AbortController();
  const onAbort = () => ac.abort(o.signal?.reason);
  o.signal?.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => ac.abort(new Error(timedOut())), o.timeoutMs);
  try {
    return await run(ac.signal);
  } catch (error) {
    if (o.signal?.aborted) throw o.signal.reason;
    if (ac.signal.aborted) return { ok: false, found: timedOut(), timedOut: true };
    return { ok: false, found: firstLine(error) };
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener("abort", onAbort);
  }
}

/** `promise`, or the signal's reason once it aborts: a provider's probe may not stop when asked. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    void promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0] || "failed";
}

// --- Kinds and the wait ---

/** A kind of health check a provider adds: its field check and what healthy means, for messages. */
export interface HealthExtension<T> {
  check(value: unknown, path: string): T;
  describe(value: T): string;
}

// biome-ignore lint/suspicious/noExplicitAny: any extension's value type; each is checked where it is defined
type Extensions = Record<string, HealthExtension<any>>;
type ValueOf<X> = X extends HealthExtension<infer T> ? T : never;

/** A health check validated: exactly one kind (`http`, `tcp` or a provider's), with its timing. */
export type HealthParams<E extends Extensions = Record<never, never>> = (
  | { http: HttpCheckParams }
  | { tcp: TcpCheckParams }
  | { [K in keyof E & string]: { [P in K]: ValueOf<E[P]> } }[keyof E & string]
) &
  HealthTiming;

/** How a provider probes its own kinds, given when probing (they need its context: a container, a cwd). */
export type ExtensionProbes<E extends Extensions> = {
  [K in keyof E]?: (value: ValueOf<E[K]>, o: ProbeOptions) => Promise<ProbeResult>;
};

/** The health checks of one provider: the built-in kinds plus its own. */
export interface HealthChecks<E extends Extensions> {
  /** Every kind, built-in first: `["http", "tcp", "exec", …]`. */
  readonly kinds: readonly string[];
  /** Field check: exactly one kind, timing defaulted; undefined when absent. */
  parse(value: unknown, path: string): HealthParams<E> | undefined;
  /** The kind a check is of. */
  kindOf(h: HealthParams<E>): string;
  /** What healthy means for `h`, for the "expected" of an error. */
  describe(h: HealthParams<E>): string;
  /** One probe of `h`; a provider kind runs through `probes` (an error there is a failed probe). */
  probe(h: HealthParams<E>, o: ProbeOptions, probes?: ExtensionProbes<E>): Promise<ProbeResult>;
}

/**
 * The health checks of a provider: `http` and `tcp`, plus the kinds in `extensions`. Validation
 * reports every wrong field at once and refuses none or two kinds (`expected exactly one of …`).
 */
export function healthChecks<E extends Extensions = Record<never, never>>(
  extensions: E = {} as E,
): HealthChecks<E> {
  const own = Object.keys(extensions);
  const kinds = ["http", "tcp", ...own];
  const kindOf = (h: HealthParams<E>) => kinds.find((k) => k in h)!;
  return {
    kinds,
    kindOf,
    parse(value, path) {
      if (value === undefined) return undefined;
      const checks: Record<string, (v: unknown, p: string) => unknown> = {
        http: optional(httpCheck),
        tcp: optional(tcpCheck),
      };
      for (const k of own) checks[k] = optional((v, p) => extensions[k]!.check(v, p));
      checks.timeoutMs = (v, p) => msOf(v, p, HEALTH_DEFAULTS.timeoutMs);
      checks.intervalMs = (v, p) => msOf(v, p, HEALTH_DEFAULTS.intervalMs);
      const h = checkFields(value, checks as FieldChecks<Record<string, unknown>>, path) as Record<
        string,
        unknown
      >;
      const given = kinds.filter((k) => h[k] !== undefined);
      if (given.length !== 1) {
        fieldError(
          path,
          `expected exactly one of ${kinds.join(", ")}, found ${given.length ? given.join(" and ") : "none"}`,
        );
      }
      const kind = given[0]!;
      return { [kind]: h[kind], timeoutMs: h.timeoutMs, intervalMs: h.intervalMs } as HealthParams<E>;
    },
    describe(h) {
      if ("http" in h) return describeHttp(h.http);
      if ("tcp" in h) return describeTcp(h.tcp);
      const kind = kindOf(h);
      return extensions[kind]!.describe((h as Record<string, unknown>)[kind]);
    },
    async probe(h, o, probes = {}) {
      if ("http" in h) return probeHttp(h.http, o);
      if ("tcp" in h) return probeTcp(h.tcp, o);
      const kind = kindOf(h);
      const run = probes[kind];
      if (!run) throw new Error(`no probe was given for the "${kind}" health check`);
      return guarded(
        o,
        () => `no answer within ${o.timeoutMs} ms`,
        (signal) =>
          untilAborted(run((h as unknown as Record<string, never>)[kind]!, { ...o, signal }), signal),
      );
    },
  };
}

/** The most one probe may take with `leftMs` of the wait left: 2 s or 4 intervals, never past the end. */
export function probeTimeoutMs(intervalMs: number, leftMs: number): number {
  return Math.max(100, Math.min(leftMs, Math.max(2_000, 4 * intervalMs)));
}

/** For `pollHealth`. */
export interface PollOptions extends HealthTiming {
  signal?: AbortSignal | undefined;
  /**
   * One round, given the most its probe may take. `ok` ends the wait healthy; `final` ends it at once,
   * unhealthy (the service exited: waiting longer cannot help). May throw to end the wait with an error.
   */
  round(probeTimeoutMs: number): Promise<ProbeResult & { final?: boolean }>;
}

/** How a wait ended; `found` is the last round's. */
export type PollResult =
  | { ok: true; found: string; elapsedMs: number }
  | { ok: false; reason: "final" | "timeout"; found: string; elapsedMs: number };

/**
 * Runs rounds until one is healthy or final, or `timeoutMs` passed (a round always runs at least once),
 * pausing `intervalMs` between them. Throws the signal's reason when it aborts.
 */
export async function pollHealth(o: PollOptions): Promise<PollResult> {
  const started = Date.now();
  const deadline = started + o.timeoutMs;
  const full = probeTimeoutMs(o.intervalMs, o.timeoutMs);
  let found: string | undefined;
  for (;;) {
    o.signal?.throwIfAborted();
    const ms = probeTimeoutMs(o.intervalMs, deadline - Date.now());
    const r = await o.round(ms);
    const elapsedMs = Date.now() - started;
    if (r.ok) return { ok: true, found: r.found, elapsedMs };
    // a probe the end of the wait cut short says nothing about the service: keep what an earlier one found
    if (!(r.timedOut && ms < full) || found === undefined) found = r.found;
    if (r.final) return { ok: false, reason: "final", found, elapsedMs };
    const left = deadline - Date.now();
    if (left <= 0) return { ok: false, reason: "timeout", found, elapsedMs };
    await sleep(Math.min(o.intervalMs, left), o.signal);
  }
}

// What a deploy file writes for the shared HTTP and TCP health checks, how it is validated (the older
// step-process form included), and how a check is described in messages. Probing is in probe.ts; the
// kinds of a provider and the wait in health.ts.
import { checkFields, optional, ParamsFieldError, show } from "../fields";

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

// --- Descriptions ---

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

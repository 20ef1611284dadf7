// Health probes shared by step kinds: "does the service answer?", asked through the Host. `http` and
// `tcp` go over `host.connect`, so on an SSH host the probe runs on the far side of the link (a
// direct-tcpip channel) and the host needs no curl. A provider adds kinds of its own (step-process:
// `exec`, `logLine`; step-docker: `exec` in the container, Docker's HEALTHCHECK) with
// `healthChecks({ ... })`; every kind then shares one validation, one timing and one wait loop.
//
// One meaning everywhere: healthy is any 2xx unless `expect.status` says otherwise; probes repeat
// every 250 ms; a wait gives up after 30 s; one probe gets at least 2 s (or 4 intervals).
import { sleep } from "../_utils";
import { checkFields, type FieldChecks, optional, ParamsFieldError } from "../fields";
import {
  describeHttp,
  describeTcp,
  HEALTH_DEFAULTS,
  type HealthTiming,
  type HttpCheckParams,
  httpCheck,
  type TcpCheckParams,
  tcpCheck,
} from "./health-check";
import { integer } from "./params";
import { guarded, type ProbeOptions, type ProbeResult, probeHttp, probeTcp, untilAborted } from "./probe";

export type {
  HttpCheck,
  HttpCheckParams,
  HttpExpect,
  StatusClass,
  StatusSpec,
  TcpCheck,
  TcpCheckParams,
} from "./health-check";
export {
  describeHttp,
  describeTcp,
  HEALTH_DEFAULTS,
  httpCheck,
  statusMatches,
  tcpCheck,
} from "./health-check";
export type { ProbeOptions, ProbeResult } from "./probe";
export { probeHttp, probeTcp } from "./probe";
export type { HealthTiming };

/** Whole milliseconds from 1 ms to a day; `fallback` when absent. */
const msOf = (value: unknown, path: string, fallback: number) =>
  integer(value, path, { min: 1, max: 86_400_000, fallback });

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
        throw new ParamsFieldError(
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

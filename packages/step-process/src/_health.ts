import type { Host } from "@atomkit/core";
import {
  argv,
  type HealthParams,
  type HttpCheck,
  healthChecks,
  pollHealth,
  probeTimeoutMs,
  sleep,
  type TcpCheck,
} from "@atomkit/core/kit";
import { regexOf } from "./_checks";

/**
 * How to tell the process is ready. Exactly one of `http`, `tcp`, `exec`, `logLine`, plus timing.
 * `http` and `tcp` are the kit's shared probes (`@atomkit/core/kit`): they go through
 * `host.connect({ port })` (a direct-tcpip channel over SSH), so the host needs no curl.
 */
export type ProcessHealthCheck = (
  | {
      /**
       * Healthy when `GET path` over HTTP/1.0 answers `expect.status` (default: any 2xx) with
       * `expect.body` in the body. The older `expect: 200` and `body: "ok"` beside it are still read.
       */
      http: HttpCheck;
    }
  | { /** Healthy when a TCP connection to the port succeeds. */ tcp: TcpCheck }
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

/** This package's own kinds beside the kit's `http` and `tcp`. */
const KINDS = {
  exec: { check: argv, describe: (argv: string[]) => `\`${argv.join(" ")}\` exits 0` },
  logLine: { check: regexOf, describe: (re: string) => `a log line matching /${re}/` },
};
const checks = healthChecks(KINDS);

/** A health check validated, defaults filled in (what the trail records). */
export type NormalizedHealth = HealthParams<typeof KINDS>;

export const healthOf = (value: unknown, path: string): NormalizedHealth | undefined =>
  checks.parse(value, path);

export const describeHealth = (h: NormalizedHealth): string => checks.describe(h);

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
  o.log(`waiting up to ${h.timeoutMs} ms for ${describeHealth(h)}`);
  let last = "no probe finished";
  const r = await pollHealth({
    ...h,
    signal: o.signal,
    round: async (timeoutMs) => {
      if (!(await o.alive())) return { ok: false, final: true, found: last };
      const probed = await probe(h, o, timeoutMs);
      last = probed.found;
      return probed;
    },
  });
  if (r.ok) return { ok: true };
  if (r.reason === "final" || !(await o.alive())) return { ok: false, reason: "exited", detail: r.found };
  return { ok: false, reason: "timeout", detail: r.found };
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

/** One probe, as observe makes it: http, tcp and exec only (a log line is an event, not a state). */
export function probeOnce(h: NormalizedHealth, o: { host: Host; cwd: string; signal?: AbortSignal }) {
  return probe(
    h,
    { ...o, logFile: "/dev/null", logOffset: 0 },
    Math.min(h.timeoutMs, probeTimeoutMs(h.intervalMs, h.timeoutMs)),
  );
}

function probe(
  h: NormalizedHealth,
  o: Pick<WaitOptions, "host" | "cwd" | "logFile" | "logOffset"> & { signal?: AbortSignal },
  timeoutMs: number,
) {
  return checks.probe(
    h,
    { host: o.host, timeoutMs, signal: o.signal },
    {
      exec: async (argv) => {
        const r = await o.host.exec(argv, { cwd: o.cwd, reject: false, timeoutMs });
        const tail = r.stderr.trim().split("\n").slice(-2).join(" ");
        if (r.code === 0) return { ok: true, found: "exit 0" };
        return { ok: false, found: `exit ${r.signal ?? r.code}${tail ? `: ${tail}` : ""}` };
      },
      logLine: async (source) => {
        const re = new RegExp(source);
        const text = (await o.host.readFile(o.logFile)).subarray(o.logOffset).toString("utf8");
        const ok = text.split("\n").some((line) => re.test(line));
        return { ok, found: ok ? "matched" : `no line matching /${source}/ in ${o.logFile} yet` };
      },
    },
  );
}

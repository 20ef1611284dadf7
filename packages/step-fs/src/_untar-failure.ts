import { posix } from "node:path";
import { isAtomError, type StepContext } from "@atomkit/core";
import { show, stepError } from "./_utils";
import { UnsafeArchiveError } from "./archive";
import type { UntarParams } from "./untar";

// How fs.untar's apply ends when it does not succeed: the limits.maxMs bound on inspection and
// extraction together, and what any error of node-tar, gzip, the host's tar or the filesystem becomes.

export const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's own bound, so the largest limits.maxMs

/** A signal that aborts after `ms` or with the step's own signal, whichever comes first. */
export interface TimeBound {
  ms: number;
  signal: AbortSignal;
  /** Whether the signal aborted because `ms` ran out (not the step's timeout or cancel). */
  expired(): boolean;
  /** Stops the timer and the listener on the step's signal; call once apply has settled. */
  dispose(): void;
}

/** `ms` from now, or the step's own signal (timeout, cancel), whichever comes first. */
export function timeBound(ms: number, outer: AbortSignal): TimeBound {
  const ac = new AbortController();
  const expired = new Error(`took longer than ${ms} ms`);
  const timer = setTimeout(() => ac.abort(expired), ms);
  const onOuter = () => ac.abort(outer.reason);
  if (outer.aborted) onOuter();
  else outer.addEventListener("abort", onOuter, { once: true });
  return {
    ms,
    signal: ac.signal,
    expired: () => ac.signal.aborted && ac.signal.reason === expired,
    dispose() {
      clearTimeout(timer);
      outer.removeEventListener("abort", onOuter);
    },
  };
}

/** Whatever apply threw, as the step's error: every failure of node-tar, gzip or tar names the step. */
export function failure(ctx: StepContext, kind: string, p: UntarParams, error: unknown, bound: TimeBound) {
  if (bound.expired()) {
    return stepError(
      ctx,
      kind,
      "apply",
      `extraction took longer than ${bound.ms} ms (limits.maxMs), nothing was kept`,
      {
        expected: `inspection and extraction within ${bound.ms} ms`,
        found: "still running, stopped",
        hint: "raise limits.maxMs for a trusted, very large archive; check the host's disk and the connection",
        cause: error,
      },
    );
  }
  if (ctx.signal.aborted) return ctx.signal.reason ?? error; // the engine's timeout or cancel says it best
  if (error instanceof UnsafeArchiveError && !error.step) {
    return new UnsafeArchiveError(error.problem, error.entry, {
      host: ctx.host.name,
      step: ctx.step,
      kind,
      phase: "apply",
      expected: error.expected,
      found: error.found ?? p.archive,
      hint: error.hint,
      cause: error.cause,
    });
  }
  if (isAtomError(error)) return error;
  // node-tar's refusals (strict mode) carry a tar code; the filesystem's errors an errno code
  const e = error as { message?: string; tarCode?: string; code?: string };
  const codes = [...new Set([e.tarCode, e.code].filter((c): c is string => typeof c === "string"))];
  return stepError(
    ctx,
    kind,
    "apply",
    `extraction failed, nothing was kept: ${e?.message ?? String(error)}`,
    {
      expected: `every entry of ${posix.basename(p.archive)} written into a new directory beside ${show(p.path)}`,
      found: codes.length ? codes.join(" / ") : "an error while reading or writing",
      hint: codes.includes("ENOSPC")
        ? `free space on the filesystem of ${show(posix.dirname(p.path))}`
        : 'the archive passed inspection: check the disk and permissions at the target, or try extractWith: "tar"',
      cause: error,
    },
  );
}

import type { StepTrailRecord, TrailRecord } from "@atomkit/core";
import type { HostModel, ReportModel, Segment } from "./model";

// A report's timeline, from the times of the records alone: each step's stretches of work, where the
// first failure happened and how long the rollback took.

/** A recorded time in ms, or NaN when the trail holds none readable (callers check). */
export const time = (text: string | undefined): number => (text ? Date.parse(text) : Number.NaN);

/**
 * Each step's records in order: `applying` opens apply, a result closes it (a failure's `checkAt` splits
 * off check); `undoing` opens undo, `undone`/`undo-failed` closes it (`verifyAt` splits off verify).
 * A phase still open at the end of the records was cut short by a process that died.
 */
export function segmentsOf(
  records: readonly TrailRecord[],
  runId: string,
  endedAt: number | undefined,
): Segment[] {
  const out: Segment[] = [];
  const open = new Map<string, { phase: "apply" | "undo"; at: number; recovered: boolean }>();
  const steps = records.filter((r): r is StepTrailRecord => r.t === "step" && r.runId === runId);
  const close = (
    step: string,
    at: number,
    tail: "check" | "verify" | undefined,
    tailAt: number | undefined,
    failed: boolean,
  ) => {
    const o = open.get(step);
    open.delete(step);
    if (!o) {
      // nothing was opened in these records: a check by recover, an undo found already restored
      out.push({ step, phase: tail ?? "verify", from: at, to: at, ...(failed ? { failed } : {}) });
      return;
    }
    const split = tailAt !== undefined && tailAt >= o.at && tailAt <= at ? tailAt : undefined;
    out.push({
      step,
      phase: o.phase,
      from: o.at,
      to: split ?? at,
      ...(failed && split === undefined ? { failed } : {}),
    });
    if (split !== undefined && tail)
      out.push({ step, phase: tail, from: split, to: at, ...(failed ? { failed } : {}) });
  };
  let lastAt = Number.NEGATIVE_INFINITY;
  for (const r of steps) {
    const at = time(r.at);
    if (!Number.isFinite(at)) continue; // a record without a readable time cannot be placed
    lastAt = Math.max(lastAt, at);
    // a phase the dead process opened and recover finished: its end is unknown, recover's work is
    // its own stretch from here
    const o = open.get(r.step);
    if (r.recovered && o && !o.recovered) {
      open.delete(r.step);
      out.push({ step: r.step, phase: o.phase, from: o.at, to: o.at, interrupted: true });
    }
    const checkAt = r.checkAt ? time(r.checkAt) : undefined;
    const verifyAt = r.verifyAt ? time(r.verifyAt) : undefined;
    switch (r.status) {
      case "applying":
        open.set(r.step, { phase: "apply", at, recovered: !!r.recovered });
        break;
      case "applied":
        close(r.step, at, undefined, undefined, false);
        break;
      case "failed-unchanged":
      case "failed-changed":
      case "failed-unknown":
        if (!open.has(r.step) && checkAt !== undefined)
          out.push({ step: r.step, phase: "check", from: checkAt, to: at, failed: true });
        else close(r.step, at, "check", checkAt, true);
        break;
      case "undoing":
        open.set(r.step, { phase: "undo", at, recovered: !!r.recovered });
        break;
      case "undone":
        close(r.step, at, "verify", verifyAt, false);
        if (verifyAt === undefined && out[out.length - 1]?.phase === "undo")
          out.push({ step: r.step, phase: "verify", from: at, to: at });
        break;
      case "undo-failed":
        close(r.step, at, "verify", verifyAt, true);
        break;
      case "drift":
        open.delete(r.step);
        out.push({ step: r.step, phase: "drift", from: at, to: at, failed: true });
        break;
      default:
        break;
    }
  }
  // still open: the process died acting; the stretch ends at the last thing the trail knows
  for (const [step, o] of open) {
    out.push({ step, phase: o.phase, from: o.at, to: endedAt ?? Math.max(o.at, lastAt), interrupted: true });
  }
  return out;
}

/** Where the first failure happened and how long the rollback took, over all hosts. */
export function markers(hosts: HostModel[]): Pick<ReportModel, "failure" | "rollback"> {
  let failure: ReportModel["failure"];
  let from = Number.POSITIVE_INFINITY;
  let to = Number.NEGATIVE_INFINITY;
  for (const h of hosts) {
    for (const run of h.runs) {
      for (const s of run.steps) {
        for (const g of s.segments) {
          if (g.failed && (!failure || g.to < failure.at)) failure = { host: h.host, step: s.name, at: g.to };
          if (g.phase === "undo" || g.phase === "verify" || g.phase === "drift") {
            from = Math.min(from, g.from);
            to = Math.max(to, g.to);
          }
        }
      }
    }
  }
  return {
    ...(failure ? { failure } : {}),
    ...(from <= to ? { rollback: { from: failure ? Math.min(from, failure.at) : from, to } } : {}),
  };
}

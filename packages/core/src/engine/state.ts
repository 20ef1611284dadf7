// The step state machine: the ten places a step can be, and the moves between them. Every status the
// engine (a run, an undo run, recover) gives a step goes through `move`, so the table below is the
// whole story; a test checks every record sequence a trail holds against it.

/**
 * Where a step is. `applying` and `undoing` are intents, written durably before the step acts: a trail
 * that ends on one of them means the process died while acting, and only a fresh observe can tell
 * what happened.
 *
 * - `pending`: not reached yet (the run stopped before it, or it is next).
 * - `applying`: intent: before was observed and recorded, apply is (or was, if the trail ends here) running.
 * - `applied`: apply returned and after was observed; `changed` says whether after differs from before.
 * - `failed-unchanged`: observe or apply failed and check found the state still at before: nothing to undo.
 * - `failed-changed`: apply failed but check found the state changed: it is undone like an applied step.
 * - `failed-unknown`: apply failed and check could not observe: undone from whatever is there at rollback.
 * - `undoing`: intent: undo is (or was, if the trail ends here) running; recover verifies it by observing.
 * - `undone`: the state was observed equal to before after undo (or already was): verified, final.
 * - `undo-failed`: undo or its verify failed after its retries: the change may be live (`recover` retries).
 * - `drift`: the state was neither what the run left nor before, so undo was not attempted (`--force`).
 */
export type StepStatus =
  | "pending"
  | "applying"
  | "applied"
  | "failed-unchanged"
  | "failed-changed"
  | "failed-unknown"
  | "undoing"
  | "undone"
  | "undo-failed"
  | "drift";

/** What a rollback may make of a step whose change may be live. */
const UNDO_OUTCOMES = ["undoing", "undone", "undo-failed", "drift"] as const;

/**
 * The allowed moves, from → to. Forward: `pending → applying → applied | failed-*`, and straight to
 * `failed-unchanged` when nothing was started (observe failed, the state held a secret, the intent could
 * not be recorded). Rollback: any live step → `undoing → undone | undo-failed`, or straight to `undone`
 * (already at before), `undo-failed` (could not observe) or `drift`. A step may stay where it is when
 * recover takes it up again (`undoing`, `undo-failed` and `drift` are written again). `failed-unchanged`
 * and `undone` are final; `pending` is final for a run that stopped before the step.
 */
export const TRANSITIONS: { readonly [from in StepStatus]: readonly StepStatus[] } = {
  pending: ["applying", "failed-unchanged"],
  applying: ["applied", "failed-unchanged", "failed-changed", "failed-unknown"],
  applied: UNDO_OUTCOMES,
  "failed-unchanged": [],
  "failed-changed": UNDO_OUTCOMES,
  "failed-unknown": UNDO_OUTCOMES,
  // recover forgets the after of a half-done undo (it may be neither after nor before): never drift
  undoing: ["undoing", "undone", "undo-failed"],
  undone: [],
  "undo-failed": ["undoing", "undone", "undo-failed"],
  drift: UNDO_OUTCOMES,
};

/** Whether a step may go from `from` to `to` (see `TRANSITIONS`). */
export function canMove(from: StepStatus, to: StepStatus): boolean {
  return Object.hasOwn(TRANSITIONS, from) && TRANSITIONS[from].includes(to);
}

/**
 * Moves a step record to `to`. A move the table does not allow is a bug in the engine, never a
 * condition of the host: it throws before the record says something the trail could not explain.
 */
export function move(rec: { name: string; status: StepStatus }, to: StepStatus): void {
  if (!canMove(rec.status, to))
    throw new Error(`atomkit engine bug: step "${rec.name}" cannot go from ${rec.status} to ${to}`);
  rec.status = to;
}

/** A step whose change may be live: applied with a change, failed after changing, or not yet undone. */
export function isLive(rec: { status: StepStatus; changed?: boolean | undefined }): boolean {
  switch (rec.status) {
    case "applied":
      return rec.changed !== false;
    case "failed-changed":
    case "failed-unknown":
    case "undoing":
    case "undo-failed":
    case "drift":
      return true;
    default:
      return false;
  }
}

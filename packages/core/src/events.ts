import type { AtomPhase } from "./atom";
import type { ErrorInfo } from "./errors";
import type { RunMode, RunStatus, StepStatus } from "./trail";
import type { Json } from "./types";

interface Base {
  runId: string;
  atom: string;
  host: string;
  /** ISO time of the event. */
  at: string;
}

interface StepBase extends Base {
  step: string;
  kind: string;
  phase: AtomPhase;
}

/** Everything a renderer needs to draw a run. Secret values are scrubbed before an event is emitted. */
export type RunEvent =
  | (Base & {
      type: "run:start";
      mode: RunMode;
      undoOf?: string;
      steps: Array<{ name: string; kind: string; phase: AtomPhase; title: string }>;
    })
  | (StepBase & { type: "step:start"; title: string })
  | (StepBase & { type: "step:log"; message: string })
  | (StepBase & { type: "step:retry"; attempt: number; error: ErrorInfo; undo: boolean })
  | (StepBase & { type: "step:applied"; changed: boolean; durationMs: number })
  | (StepBase & {
      type: "step:failed";
      status: Extract<StepStatus, "failed-unchanged" | "failed-changed" | "failed-unknown">;
      error: ErrorInfo;
      durationMs: number;
    })
  | (Base & { type: "rollback:start"; steps: string[]; reason?: ErrorInfo })
  | (StepBase & { type: "step:undo-start" })
  | (StepBase & { type: "step:drift"; forced: boolean; expected: Json; found: Json })
  | (StepBase & { type: "step:undone"; verified: true; alreadyRestored: boolean; durationMs: number })
  | (StepBase & { type: "step:undo-failed"; error: ErrorInfo; durationMs: number })
  | (Base & {
      type: "run:end";
      status: RunStatus;
      durationMs: number;
      stillApplied: string[];
      error?: ErrorInfo;
      /** The trail could not record everything: the run's outcome may be missing there (see `recover`). */
      trailError?: ErrorInfo;
    });

/** The `type` of a run event (`run:start`, `step:end`…), for filtering `onEvent`. */
export type RunEventType = RunEvent["type"];

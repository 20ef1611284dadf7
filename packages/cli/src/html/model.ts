import type { ErrorInfo, Json } from "@atomkit/core";

// What a report shows, read from the trail alone (no deploy file, no host): a run or a fleet, each host's
// runs (the forward run and the undos that reversed it) and, per step, the segments of a timeline.

export type Phase = "apply" | "check" | "undo" | "verify" | "drift";

/** One stretch of a step's work in time (ms since the epoch). */
export interface Segment {
  step: string;
  phase: Phase;
  from: number;
  to: number;
  failed?: boolean;
  /** Cut short by a process that died; recover decided the rest. */
  interrupted?: boolean;
}

export interface StepModel {
  name: string;
  kind: string;
  title: string;
  params: Json;
  status: string;
  before?: Json;
  after?: Json;
  changed?: boolean;
  verified?: boolean;
  error?: ErrorInfo;
  undoError?: ErrorInfo;
  applyMs?: number;
  undoMs?: number;
  segments: Segment[];
}

export type RunStatusShown = "committed" | "rolled-back" | "rollback-failed" | "unfinished";

export interface RunModel {
  runId: string;
  mode: "run" | "undo";
  undoOf?: string;
  host: string;
  status: RunStatusShown;
  recovered?: boolean;
  startedAt: number;
  endedAt?: number;
  /** Who ran it (the lock's owner: user@machine). */
  owner?: string;
  vars: Array<[string, string]>;
  steps: StepModel[];
  error?: ErrorInfo;
  stillApplied?: string[];
}

export type HostOutcome =
  | "committed"
  | "rolled-back"
  | "rollback-failed"
  | "not-run"
  | "refused"
  | "unfinished";

export interface HostModel {
  host: string;
  outcome: HostOutcome;
  /** The batch (0-based) the host ran in. */
  batch: number;
  /** Oldest first: the host's run in this fleet, then the undos of it. */
  runs: RunModel[];
  /** The step whose failure made this host roll back (or stop). */
  failedStep?: string;
  /** Vars of this host that differ from the fleet's (per-host vars of the deploy file). */
  ownVars?: Array<[string, string]>;
}

export type Outcome = "committed" | "rolled-back" | "rollback-failed" | "partial" | "unfinished";

export interface ReportModel {
  kind: "run" | "fleet";
  id: string;
  atom: string;
  mode: "run" | "undo";
  undoOf?: string;
  outcome: Outcome;
  vars: Array<[string, string]>;
  owner?: string;
  machine: string;
  pid: number;
  startedAt: number;
  endedAt?: number;
  hosts: HostModel[];
  batches: number;
  /** The first failure of a step, which started the rollback. */
  failure?: { host: string; step: string; at: number };
  /** From the first undo to the last one's end, across every host it touched. */
  rollback?: { from: number; to: number };
  generatedAt: number;
}

// built by report-model.ts (a run or a fleet), run-model.ts (one run) and timeline.ts (its segments)
export { reportModel } from "./report-model";
export { runModel } from "./run-model";

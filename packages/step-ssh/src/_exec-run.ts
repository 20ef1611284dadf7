import type { ExecResult } from "@atomkit/core";
import { OutputTail, parsePidMarker } from "./_utils";

/**
 * Where one remote command is, from the exec request to the channel's close:
 *
 * - `running`: the program runs; output is kept (the last `maxOutput` bytes per stream).
 * - `stopping`: a timeout or an abort asked for it to end: it was killed (SIGKILL to the channel and,
 *   once its pid is known, to its process group) and the channel is closed if it lingers — but not
 *   before the pid marker was read, or a command started late would outlive our close.
 * - `closed`: the channel closed; the outcome is settled and nothing changes any more.
 *
 * Beside the phase, the pid marker the remote shell prints first on stderr is `pending` until read (it
 * may come in pieces, or never: then the bytes read are stderr after all).
 */
export type ExecPhase = "running" | "stopping" | "closed";

/** What stopped a command: its `timeoutMs`, or its `signal`. */
export type StopCause = "timeout" | "abort";

/** How a command ended, for the caller to resolve or reject with. */
export type ExecOutcome =
  | { type: "exited"; result: ExecResult }
  /** Exit 127 with the shell's "not found": the program is not on the host (localHost's ENOENT). */
  | { type: "not-found"; result: ExecResult }
  | { type: "aborted" }
  /** The channel closed with no exit status, not by our timeout: the link likely dropped. */
  | { type: "no-exit" };

export interface ExecEffects {
  /** Kill the remote command: the channel's process, and its process group when `pid` is known. */
  kill(pid: number | undefined): void;
  /** Close the channel after a grace period if the killed command does not end it. */
  closeSoon(): void;
}

/**
 * The state of one remote command, with no I/O of its own: the channel's events go in, kills come out
 * through `effects`, and `close()` says how it ended. Each event is valid in any phase; what it does
 * depends on the phase (output after the close is dropped, a second stop does nothing).
 */
export class ExecRun {
  phase: ExecPhase = "running";
  cause: StopCause | undefined;
  pid: number | undefined;
  private exit: { code: number | null; signal: string | null } | undefined;
  private marker: "pending" | "read" = "pending";
  private head = Buffer.alloc(0);
  private readonly stdout: OutputTail;
  private readonly stderr: OutputTail;

  constructor(
    private readonly effects: ExecEffects,
    maxOutput: number,
  ) {
    this.stdout = new OutputTail(maxOutput);
    this.stderr = new OutputTail(maxOutput);
  }

  stdoutData(data: Buffer): void {
    if (this.phase !== "closed") this.stdout.push(data);
  }

  stderrData(data: Buffer): void {
    if (this.phase === "closed") return;
    if (this.marker === "read") {
      this.stderr.push(data);
      return;
    }
    this.head = Buffer.concat([this.head, data]);
    const nl = this.head.indexOf(10);
    if (nl === -1 && this.head.length < 64) return; // the marker line is not complete yet
    const pid = parsePidMarker(this.head.subarray(0, nl === -1 ? this.head.length : nl).toString("latin1"));
    const rest = pid === undefined ? this.head : this.head.subarray(nl + 1);
    this.marker = "read";
    this.head = Buffer.alloc(0);
    if (rest.length) this.stderr.push(rest);
    if (pid !== undefined) this.pid = pid;
    if (this.phase === "stopping") {
      // stopped before the pid was known: its process group can be killed now, then the channel closed
      if (pid !== undefined) this.effects.kill(pid);
      this.effects.closeSoon();
    }
  }

  exited(code: number | null, signal: string | null): void {
    if (this.phase !== "closed") this.exit = { code, signal };
  }

  /** A timeout or an abort: kill the command once, and close the channel if it lingers. */
  stop(cause: StopCause): void {
    if (this.phase !== "running") {
      // an abort during a timeout's stop still means the caller gave up: report it as aborted
      if (this.phase === "stopping" && cause === "abort") this.cause = "abort";
      return;
    }
    this.phase = "stopping";
    this.cause = cause;
    this.effects.kill(this.pid);
    // Closed from our side only once the process group could be killed (or there is none to know):
    // a shell that starts late on a busy host prints its pid after our close, unheard, and its command
    // would run on orphaned. Until then the channel ends by itself when the command does.
    if (this.marker === "read") this.effects.closeSoon();
  }

  /** The channel closed: settles the outcome (the same on every later call). */
  close(): ExecOutcome {
    if (this.phase !== "closed") {
      if (this.head.length) this.stderr.push(this.head); // a marker that never completed is stderr
      this.head = Buffer.alloc(0);
      this.phase = "closed";
    }
    if (this.cause === "abort") return { type: "aborted" };
    const exit = this.exit ?? (this.cause === "timeout" ? { code: null, signal: "SIGKILL" } : undefined);
    if (!exit) return { type: "no-exit" };
    const result: ExecResult = { ...exit, stdout: this.stdout.text(), stderr: this.stderr.text() };
    // the remote shell reports a missing program as exit 127
    if (result.code === 127 && /\bexec: .*not found/.test(result.stderr))
      return { type: "not-found", result };
    return { type: "exited", result };
  }
}

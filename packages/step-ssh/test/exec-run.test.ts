// The states of one remote command (ExecRun), alone: channel events in, kills and the outcome out.
import { describe, expect, it } from "vitest";
import { ExecRun } from "../src/_exec-run";

const MARKER = "\u001eatomkit-pid ";

function started(maxOutput = 1024) {
  const kills: Array<number | undefined> = [];
  let closeSoon = 0;
  const run = new ExecRun(
    {
      kill: (pid) => kills.push(pid),
      closeSoon: () => {
        closeSoon++;
      },
    },
    maxOutput,
  );
  return { run, kills, closeSoons: () => closeSoon };
}

describe("ExecRun", () => {
  it("running → closed: the pid marker is taken off stderr, even split over chunks", () => {
    const { run, kills } = started();
    expect(run.phase).toBe("running");
    run.stderrData(Buffer.from(`${MARKER}12`));
    expect(run.pid).toBeUndefined();
    run.stderrData(Buffer.from("34\nwarn"));
    expect(run.pid).toBe(1234);
    run.stderrData(Buffer.from("ing\n"));
    run.stdoutData(Buffer.from("out"));
    run.exited(0, null);
    expect(run.close()).toEqual({
      type: "exited",
      result: { code: 0, signal: null, stdout: "out", stderr: "warning\n" },
    });
    expect(run.phase).toBe("closed");
    expect(kills).toEqual([]);
  });

  it("stderr without a marker is stderr (a line, or 64 bytes with no newline, or what is left at the close)", () => {
    const a = started();
    a.run.stderrData(Buffer.from("no marker here\n"));
    a.run.exited(1, null);
    expect(a.run.close()).toMatchObject({ result: { stderr: "no marker here\n" } });
    const b = started();
    b.run.stderrData(Buffer.from("x".repeat(70)));
    b.run.stderrData(Buffer.from("y"));
    b.run.exited(0, null);
    expect(b.run.close()).toMatchObject({ result: { stderr: `${"x".repeat(70)}y` } });
    const c = started();
    c.run.stderrData(Buffer.from("short"));
    c.run.exited(0, null);
    expect(c.run.close()).toMatchObject({ result: { stderr: "short" } });
  });

  it("a timeout stops once: kills (the group once its pid is known), closes soon, ends as SIGKILL", () => {
    const { run, kills, closeSoons } = started();
    run.stop("timeout");
    expect(run.phase).toBe("stopping");
    expect(kills).toEqual([undefined]); // the pid is not known yet: the channel only
    // not closed from our side yet: a shell that starts late would print its pid unheard and run on
    expect(closeSoons()).toBe(0);
    run.stderrData(Buffer.from(`${MARKER}77\n`));
    expect(kills).toEqual([undefined, 77]); // known now: its process group too
    expect(closeSoons()).toBe(1); // and now the channel may be closed if it lingers
    run.stop("timeout");
    expect(kills).toHaveLength(2);
    expect(closeSoons()).toBe(1);
    expect(run.close()).toEqual({
      type: "exited",
      result: { code: null, signal: "SIGKILL", stdout: "", stderr: "" },
    });
  });

  it("stopped after the marker was read: killed with its group and closed soon at once", () => {
    const { run, kills, closeSoons } = started();
    run.stderrData(Buffer.from(`${MARKER}42\n`));
    run.stop("abort");
    expect(kills).toEqual([42]);
    expect(closeSoons()).toBe(1);
  });

  it("an abort wins over an exit status and over a timeout that came first", () => {
    const a = started();
    a.run.stop("abort");
    a.run.exited(0, null);
    expect(a.run.close()).toEqual({ type: "aborted" });
    const b = started();
    b.run.stop("timeout");
    b.run.stop("abort");
    expect(b.kills).toHaveLength(1);
    expect(b.run.close()).toEqual({ type: "aborted" });
  });

  it("no exit status and no stop: no-exit (the link likely dropped); 127 with 'not found': not-found", () => {
    expect(started().run.close()).toEqual({ type: "no-exit" });
    const { run } = started();
    run.stderrData(Buffer.from(`${MARKER}5\nsh: 1: exec: nope: not found\n`));
    run.exited(127, null);
    expect(run.close()).toMatchObject({ type: "not-found", result: { code: 127 } });
  });

  it("closed is final: later events change nothing, output is kept to maxOutput", () => {
    const { run, kills } = started(8);
    run.stdoutData(Buffer.from("0123456789"));
    run.exited(0, null);
    const first = run.close();
    run.stdoutData(Buffer.from("late"));
    run.exited(3, null);
    run.stop("abort");
    expect(run.close()).toEqual(first);
    expect(first).toMatchObject({ result: { stdout: "23456789", code: 0 } });
    expect(kills).toEqual([]);
  });
});

import { stripVTControlCharacters } from "node:util";
import { describe, expect, it } from "vitest";
import { createRenderer, pickMode } from "../src/render";

// The live tree fits the terminal it is drawn on: a step title gets what the width leaves.

function terminal(columns: number, rows = 40) {
  let text = "";
  const stream = {
    isTTY: true,
    columns,
    rows,
    write(chunk: string) {
      text += chunk;
      return true;
    },
    on() {
      return stream;
    },
    once() {
      return stream;
    },
    off() {
      return stream;
    },
    removeListener() {
      return stream;
    },
  } as unknown as NodeJS.WriteStream;
  return { stream, lines: () => stripVTControlCharacters(text).split("\n") };
}

const title = `upload ${"/srv/app/releases/20261202T050000Z/".repeat(6)}app.tar.gz`;

function draw(columns: number): string {
  const t = terminal(columns);
  const mode = pickMode(t.stream, false, {});
  expect(mode.mode).toBe("tty");
  const r = createRenderer(mode);
  r.event({
    type: "run:start",
    at: new Date().toISOString(),
    runId: "r1",
    atom: "release",
    host: "web1",
    mode: "run",
    steps: [{ name: "upload", kind: "fs.upload", phase: "steps", title }],
  } as never);
  r.done();
  return t.lines().find((l) => l.includes("upload "))!;
}

describe("the TTY tree", () => {
  it("cuts a step title to the terminal's width, wider terminals show more of it", () => {
    const narrow = draw(100);
    const wide = draw(200);
    expect(narrow.length).toBeLessThanOrEqual(100);
    expect(wide.length).toBeLessThanOrEqual(200);
    expect(narrow).toContain("…");
    expect(wide.length).toBeGreaterThan(narrow.length + 50);
  });

  it("a terminal that reports no size gets plain lines", () => {
    expect(pickMode(terminal(0, 0).stream, false, {}).mode).toBe("plain");
  });
});

describe("a failed step's line", () => {
  it("shows the error's short message from its fields, whatever its context holds (a ':' in the host name)", () => {
    // the ErrorInfo a StepError records (core's toErrorInfo): the message carries the context
    const error = {
      name: "StepError",
      code: "ATOM_STEP_FAILED",
      message:
        '[atomkit] atom "release", host "web:2222", step "upload" (fs.upload), apply: apply failed: permission denied',
      shortMessage: "apply failed: permission denied",
    };
    const t = terminal(120);
    const r = createRenderer({ stream: t.stream, mode: "plain", color: false });
    r.event({
      type: "step:failed",
      at: new Date().toISOString(),
      runId: "r1",
      atom: "release",
      host: "web:2222",
      step: "upload",
      kind: "fs.upload",
      status: "failed-unchanged",
      error,
      durationMs: 3,
    } as never);
    r.done();
    const line = t.lines().find((l) => l.includes("✗"))!;
    expect(line).toMatch(/✗ upload failed-unchanged: apply failed: permission denied$/);
  });
});

import { stripVTControlCharacters } from "node:util";
import type { ErrorInfo, RunEvent } from "@atomkit/core";
import { createLogUpdate } from "log-update";
import { createColors } from "picocolors";

export interface Renderer {
  event(e: RunEvent): void;
  note(text: string): void;
  done(): void;
}

export interface RenderOptions {
  stream: NodeJS.WriteStream;
  mode: "tty" | "plain" | "json";
  color: boolean;
}

export function pickMode(stream: NodeJS.WriteStream, json: boolean, env: NodeJS.ProcessEnv): RenderOptions {
  // a terminal that reports no size (0×0 under `script`, some CI PTYs) cannot hold a redrawn tree
  const sized = (stream.columns ?? 0) > 0 && (stream.rows ?? 0) > 0;
  const tty = !!stream.isTTY && sized && env.CI !== "true" && env.TERM !== "dumb";
  const color = env.FORCE_COLOR ? env.FORCE_COLOR !== "0" : tty && !("NO_COLOR" in env);
  return { stream, mode: json ? "json" : tty ? "tty" : "plain", color };
}

export function createRenderer(o: RenderOptions): Renderer {
  if (o.mode === "json") return jsonRenderer(o.stream);
  if (o.mode === "tty") return ttyRenderer(o);
  return plainRenderer(o);
}

/** One JSON object per line: the event stream, for scripts. */
function jsonRenderer(stream: NodeJS.WriteStream): Renderer {
  return {
    event: (e) => stream.write(`${JSON.stringify(e)}\n`),
    note: (text) =>
      stream.write(`${JSON.stringify({ type: "note", at: new Date().toISOString(), message: text })}\n`),
    done: () => {},
  };
}

const ms = (n: number) => (n < 1000 ? `${n}ms` : `${(n / 1000).toFixed(1)}s`);
/** The error's own first line, without the context the renderer already shows (host, step). */
const firstLine = (e?: ErrorInfo) => (e?.shortMessage ?? e?.message ?? "").split("\n")[0];

/** Plain timestamped lines: CI logs, pipes, NO_COLOR terminals that are not TTYs. */
function plainRenderer(o: RenderOptions): Renderer {
  const c = createColors(o.color);
  const line = (host: string, text: string) => {
    const t = new Date().toISOString().slice(11, 23);
    o.stream.write(`${c.dim(t)} ${c.cyan(`[${host}]`)} ${text}\n`);
  };
  return {
    event(e) {
      switch (e.type) {
        case "run:start":
          return line(
            e.host,
            `${c.bold(e.mode === "undo" ? "undo" : "run")} ${e.atom} ${c.dim(e.runId)}${e.undoOf ? ` of ${e.undoOf}` : ""} (${e.steps.length} steps)`,
          );
        case "step:start":
          return line(e.host, `▸ ${e.step} ${c.dim(`${e.kind}: ${e.title}`)}`);
        case "step:log":
          return line(e.host, `  ${c.dim(`${e.step}: ${e.message}`)}`);
        case "step:retry":
          return line(
            e.host,
            c.yellow(
              `  ${e.step}: ${e.undo ? "undo" : "apply"} attempt ${e.attempt} failed, retrying: ${firstLine(e.error)}`,
            ),
          );
        case "step:applied":
          return line(
            e.host,
            `${c.green("✓")} ${e.step} ${c.dim(ms(e.durationMs))}${e.changed ? "" : c.dim(" (no change)")}`,
          );
        case "step:failed":
          return line(e.host, `${c.red("✗")} ${e.step} ${c.red(e.status)}: ${firstLine(e.error)}`);
        case "rollback:start":
          return line(
            e.host,
            c.magenta(`↺ rolling back ${e.steps.length ? e.steps.join(" ← ") : "(nothing changed)"}`),
          );
        case "step:undo-start":
          return line(e.host, c.magenta(`↺ undo ${e.step}`));
        case "step:drift":
          return line(
            e.host,
            c.yellow(
              `! drift at ${e.step}: expected ${JSON.stringify(e.expected)}, found ${JSON.stringify(e.found)}${e.forced ? " (forced)" : ""}`,
            ),
          );
        case "step:undone":
          return line(
            e.host,
            `${c.magenta("↺")} ${e.step} ${c.green(e.alreadyRestored ? "already as before, verified" : "undone, verified")} ${c.dim(ms(e.durationMs))}`,
          );
        case "step:undo-failed":
          return line(e.host, `${c.red("✗")} undo ${e.step} failed: ${firstLine(e.error)}`);
        case "run:end": {
          const color = e.status === "committed" ? c.green : e.status === "rolled-back" ? c.yellow : c.red;
          const still = e.stillApplied.length ? c.red(` — still applied: ${e.stillApplied.join(", ")}`) : "";
          return line(e.host, `${c.bold("■")} ${color(e.status)} in ${ms(e.durationMs)}${still}`);
        }
      }
    },
    note: (text) => o.stream.write(`${text}\n`),
    done: () => {},
  };
}

interface Row {
  step: string;
  kind: string;
  title: string;
  state: "pending" | "running" | "done" | "nochange" | "failed" | "undoing" | "undone" | "undo-failed";
  detail: string;
  failure?: string;
}

/** A live tree per host and step, redrawn in place (log-update), with spinners and durations. */
function ttyRenderer(o: RenderOptions): Renderer {
  const c = createColors(o.color);
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let frame = 0;
  const hosts = new Map<string, { rows: Map<string, Row>; status: string; runId: string }>();
  const notes: string[] = [];
  let finished = false;
  const update = createLogUpdate(o.stream, { showCursor: false });
  const draw = () => {
    if (finished) return;
    const out: string[] = [];
    for (const [host, h] of hosts) {
      out.push(`${c.bold(c.cyan(host))} ${c.dim(h.runId)} ${h.status}`);
      for (const r of h.rows.values()) {
        const icon = {
          pending: c.dim("·"),
          running: c.cyan(frames[frame % frames.length]!),
          done: c.green("✓"),
          nochange: c.dim("✓"),
          failed: c.red("✗"),
          undoing: c.magenta(frames[frame % frames.length]!),
          undone: c.magenta("↺"),
          "undo-failed": c.red("✗"),
        }[r.state];
        // the title gets what the terminal's width leaves after icon, name and detail
        const room = Math.max(20, (o.stream.columns || 80) - 22 - stripVTControlCharacters(r.detail).length);
        const title = r.title.length > room ? `${r.title.slice(0, room - 1)}…` : r.title;
        out.push(`  ${icon} ${r.step.padEnd(14)} ${c.dim(title)} ${r.detail}`);
      }
    }
    update([...out, ...notes].join("\n"));
  };
  const timer = setInterval(() => {
    frame++;
    draw();
  }, 80);
  timer.unref();
  const row = (e: { host: string; step: string }) => hosts.get(e.host)?.rows.get(e.step);
  return {
    event(e) {
      if (e.type === "run:start") {
        hosts.set(e.host, {
          runId: e.runId,
          status: e.mode === "undo" ? c.magenta("undo") : "",
          rows: new Map(
            e.steps.map((s) => [
              s.name,
              {
                step: s.name,
                kind: s.kind,
                title: s.title,
                state: e.mode === "undo" ? "done" : "pending",
                detail: "",
              },
            ]),
          ),
        });
      } else if (e.type === "run:end") {
        const h = hosts.get(e.host);
        if (h) {
          const color = e.status === "committed" ? c.green : e.status === "rolled-back" ? c.yellow : c.red;
          h.status = `${color(e.status)} ${c.dim(ms(e.durationMs))}${e.stillApplied.length ? c.red(` still applied: ${e.stillApplied.join(", ")}`) : ""}`;
        }
      } else if ("step" in e) {
        const r = row(e);
        if (!r) return;
        if (e.type === "step:start") r.state = "running";
        else if (e.type === "step:applied") {
          r.state = e.changed ? "done" : "nochange";
          r.detail = c.dim(ms(e.durationMs));
        } else if (e.type === "step:failed") {
          r.state = "failed";
          r.failure = `${e.status}: ${firstLine(e.error)}`;
          r.detail = c.red(r.failure);
        } else if (e.type === "step:undo-start") r.state = "undoing";
        else if (e.type === "step:undone") {
          r.state = "undone";
          // the reason for the rollback stays visible next to the undo
          r.detail = `${r.failure ? `${c.red(r.failure)} ` : ""}${c.magenta(`↺ undone, verified ${ms(e.durationMs)}`)}`;
        } else if (e.type === "step:undo-failed") {
          r.state = "undo-failed";
          r.detail = c.red(`undo failed: ${firstLine(e.error)}`);
        } else if (e.type === "step:drift") r.detail = c.yellow(`drift: found ${JSON.stringify(e.found)}`);
        else if (e.type === "step:log") r.detail = c.dim(e.message);
      }
      draw();
    },
    note(text) {
      notes.push(text);
      draw();
    },
    done() {
      // called by the command and again on exit: a second call must not print the tree again
      if (finished) return;
      finished = true;
      clearInterval(timer);
      draw();
      update.done();
    },
  };
}

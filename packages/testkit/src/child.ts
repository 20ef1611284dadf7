import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { PATIENCE_MS } from "./patience";
import { whenTestEnds } from "./test-end";

/** What a child runs: a module file (absolute path or `file:` URL) or ES module source text. */
export type ChildScript = string | URL | { source: string };

/** How `runInChild` starts the child Node process. */
export interface RunInChildOptions {
  /** argv after the script: `process.argv.slice(2)` in the child. */
  args?: readonly string[];
  /** Added to the parent's environment (`undefined` removes a variable). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Default: the parent's cwd. Bare imports in `{ source }` resolve from here. */
  cwd?: string;
  /** Written to the child's stdin, which is then closed (secrets go here, never in argv). */
  input?: string;
  /** Node flags, e.g. `["--import", "tsx"]` to run a TypeScript fixture. */
  execArgv?: readonly string[];
}

/** How a child ended, with everything it printed. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running child: what it printed so far, a wait for a marker, and a kill that waits for the end. */
export interface ChildRun {
  readonly pid: number | undefined;
  /** Everything printed so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Settles when the child has exited and its output is closed; rejects only if it could not start. */
  readonly exited: Promise<ChildExit>;
  /**
   * Waits until the output (stdout and stderr) contains `marker` or matches it, or `marker()` holds.
   * Rejects when the child exits first, or after `ms` (default `PATIENCE_MS`), with what it printed.
   */
  waitFor(marker: string | RegExp | (() => boolean | Promise<boolean>), ms?: number): Promise<void>;
  /** Sends `signal` (default SIGKILL: no cleanup runs, as in a crash) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<ChildExit>;
}

/**
 * Runs a deploy or fixture in a separate Node process, for crash tests: start it, wait for the point
 * to kill it at (`waitFor("written")`), `kill()` it with SIGKILL, then recover from what it left.
 * A child that kills itself is awaited with `exited`. The child is killed when the test ends (passed,
 * failed or timed out), or when the worker exits if started outside a test.
 */
export function runInChild(script: ChildScript, options: RunInChildOptions = {}): ChildRun {
  const target =
    typeof script === "object" && "source" in script
      ? ["--input-type=module", "--eval", script.source]
      : [script instanceof URL || script.startsWith("file:") ? fileURLToPath(script) : script];
  const child = spawn(process.execPath, [...(options.execArgv ?? []), ...target, ...(options.args ?? [])], {
    cwd: options.cwd ?? process.cwd(),
    env: withEnv(options.env),
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString("utf8");
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString("utf8");
  });
  // a child that exits before reading its input must not crash the test with EPIPE
  child.stdin?.on("error", () => {});
  child.stdin?.end(options.input ?? "");
  const exited = new Promise<ChildExit>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  exited.catch(() => {}); // reported to whoever awaits it; never an unhandled rejection
  const kill = (signal: NodeJS.Signals = "SIGKILL") => {
    if (isRunning(child)) child.kill(signal);
    return exited;
  };
  whenTestEnds(
    () => kill().catch(() => {}),
    () => {
      if (isRunning(child)) child.kill("SIGKILL");
    },
  );
  return {
    pid: child.pid,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    kill,
    async waitFor(marker, ms = PATIENCE_MS) {
      const seen =
        typeof marker === "function"
          ? marker
          : () =>
              typeof marker === "string" ? (stdout + stderr).includes(marker) : marker.test(stdout + stderr);
      const what = typeof marker === "function" ? "its condition" : String(marker);
      const end = Date.now() + ms;
      let ended = false;
      void exited.then(
        () => (ended = true),
        () => (ended = true),
      );
      while (!(await seen())) {
        if (ended && !(await seen()))
          throw new Error(
            `the child exited (${describeEnd(child)}) before ${what}:\n${tail(stdout, stderr)}`,
          );
        if (Date.now() > end)
          throw new Error(`waited ${ms} ms for the child to print ${what}:\n${tail(stdout, stderr)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

function withEnv(extra: RunInChildOptions["env"]): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function describeEnd(child: ChildProcess): string {
  return child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`;
}

/** The last part of what a child printed, for an error message. */
function tail(stdout: string, stderr: string): string {
  const clip = (s: string) => (s.length > 4000 ? `…${s.slice(-4000)}` : s);
  return `stdout: ${clip(stdout) || "(nothing)"}\nstderr: ${clip(stderr) || "(nothing)"}`;
}

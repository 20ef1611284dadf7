import { createHash } from "node:crypto";
import {
  deepEqual,
  defineStep,
  type Host,
  HostError,
  isNotFound,
  type StepContext,
  shellQuote,
} from "@atomkit/core";

export interface ExecCommandParams {
  /** The change, as an argv (never a shell string). **Required.** */
  command: string[];
  /** The argv that reverses `command`. **Required.** */
  undo: string[];
  /**
   * A read-only argv whose trimmed stdout and exit code are the observed state. Without it the state is
   * only a marker of whether `command` ran to success (see the README for what that cannot see).
   */
  check?: string[];
  /** Working directory of all three commands on the host. */
  cwd?: string;
  /** Added to the environment of all three commands. Mark secret values with the step option `secret: ["env.NAME"]`. */
  env?: Record<string, string>;
}

/** With `check`: what it printed. Without: which run/step last applied `command` and has not undone it. */
export type ExecCommandState = { stdout: string; code: number | null } | { appliedBy: string | null };

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `ssh.exec`: a command paired with its undo command, for changes no provider covers yet. It runs
 * through `ctx.host`, so on any host (local or SSH).
 */
export const execCommand = defineStep({
  kind: "ssh.exec",
  package: "@atomkit/step-ssh",
  params: (input: ExecCommandParams): ExecCommandParams => {
    if (input === null || typeof input !== "object") throw invalid("", "params must be an object");
    argvOf(input.command, "command");
    argvOf(input.undo, "undo");
    if (input.check !== undefined) argvOf(input.check, "check");
    if (input.cwd !== undefined && (typeof input.cwd !== "string" || !input.cwd)) {
      throw invalid("cwd", "cwd must be a non-empty string");
    }
    if (input.env !== undefined) {
      if (input.env === null || typeof input.env !== "object" || Array.isArray(input.env)) {
        throw invalid("env", "env must be an object of strings");
      }
      for (const [k, v] of Object.entries(input.env)) {
        if (!ENV_NAME_RE.test(k)) throw invalid(`env.${k}`, "not a valid environment variable name");
        if (typeof v !== "string") throw invalid(`env.${k}`, "must be a string");
      }
    }
    const out: ExecCommandParams = { command: [...input.command], undo: [...input.undo] };
    if (input.check) out.check = [...input.check];
    if (input.cwd !== undefined) out.cwd = input.cwd;
    if (input.env) out.env = { ...input.env };
    return out;
  },
  describe: (p) => `run ${show(p.command)} (undo: ${show(p.undo)})`,

  observe: (ctx, p) => observeState(ctx, p),

  async apply(ctx, p) {
    await ctx.host.exec(p.command, options(ctx, p));
    if (!p.check) await writeMarker(ctx.host, p, `${ctx.runId}/${ctx.step}`);
  },

  // Cannot restore more than the undo command restores; without `check`, drift is invisible.
  async undo(ctx, p, before) {
    // undo runs at most once per change: a state already back at `before` is left alone
    if (deepEqual(await observeState(ctx, p), before)) return;
    await ctx.host.exec(p.undo, options(ctx, p));
    if (!p.check && "appliedBy" in before) await writeMarker(ctx.host, p, before.appliedBy);
  },
});

// --- Internal helpers ---

async function observeState(ctx: StepContext, p: ExecCommandParams): Promise<ExecCommandState> {
  if (p.check) return runCheck(ctx, p);
  return { appliedBy: await readMarker(ctx.host, p) };
}

async function runCheck(ctx: StepContext, p: ExecCommandParams): Promise<ExecCommandState> {
  const argv = p.check as string[];
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await ctx.host.exec(argv, { ...options(ctx, p), reject: false });
      return { stdout: r.stdout.trim(), code: r.code };
    } catch (error) {
      // check is read-only, so running it again on a fresh connection is safe
      if (attempt === 0 && error instanceof HostError && error.reason === "CONNECTION") continue;
      throw error;
    }
  }
}

function options(ctx: StepContext, p: ExecCommandParams) {
  return {
    signal: ctx.signal,
    ...(p.cwd !== undefined ? { cwd: p.cwd } : {}),
    ...(p.env ? { env: p.env } : {}),
  };
}

/** What identifies a command without `check`: a digest, since argv may hold secrets. */
function commandDigest(p: ExecCommandParams): string {
  return createHash("sha256")
    .update(JSON.stringify({ command: p.command, undo: p.undo, cwd: p.cwd ?? null }))
    .digest("hex");
}

/** The marker of a command without `check`: keyed by what it runs, not by run, so `undo <runId>` finds it. */
function markerPath(host: Host, p: ExecCommandParams): string {
  return `${host.stateDir}/ssh-exec/${commandDigest(p).slice(0, 32)}.json`;
}

async function readMarker(host: Host, p: ExecCommandParams): Promise<string | null> {
  try {
    const data = JSON.parse((await host.readFile(markerPath(host, p))).toString("utf8")) as {
      appliedBy?: unknown;
    };
    return typeof data.appliedBy === "string" ? data.appliedBy : null;
  } catch (error) {
    if (isNotFound(error) || error instanceof SyntaxError) return null;
    throw error;
  }
}

async function writeMarker(host: Host, p: ExecCommandParams, appliedBy: string | null): Promise<void> {
  const path = markerPath(host, p);
  if (appliedBy === null) {
    await host.rm(path, { force: true });
    return;
  }
  await host.mkdir(`${host.stateDir}/ssh-exec`, { recursive: true });
  // never argv or env: they may hold secrets, and a host file outlives the run's redaction
  await host.writeFile(path, JSON.stringify({ appliedBy, sha256: commandDigest(p) }));
}

function argvOf(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || !value.length) {
    throw invalid(field, `${field} must be a non-empty argv array, e.g. ["systemctl", "reload", "nginx"]`);
  }
  value.forEach((word, i) => {
    if (typeof word !== "string") throw invalid(`${field}.${i}`, "every argv word must be a string");
  });
  if (!value[0]) throw invalid(`${field}.0`, "the program name must not be empty");
  return value as string[];
}

function invalid(path: string, message: string): Error {
  return Object.assign(new Error(message), { path });
}

function show(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}

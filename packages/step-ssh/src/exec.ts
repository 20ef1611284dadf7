import { createHash } from "node:crypto";
import { defineStep, type Host, HostError, isNotFound, type StepContext } from "@atomkit/core";
import {
  argv,
  checkFields,
  clip,
  deepEqual,
  env,
  fail,
  nonEmptyString,
  optional,
  ParamsFieldError,
  shellQuote,
  show,
  tempPrefix,
} from "@atomkit/core/kit";

/** `ssh.exec`'s params: a command, the command that reverses it, and how to observe the result. */
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

const KIND = "ssh.exec";

/**
 * `ssh.exec`: a command paired with its undo command, for changes no provider covers yet. It runs
 * through `ctx.host`, so on any host (local or SSH).
 */
export const execCommand = defineStep({
  kind: KIND,
  package: "@atomkit/step-ssh",
  params: (input: ExecCommandParams): ExecCommandParams =>
    checkFields(input, {
      command: argv,
      undo: argv,
      check: optional(argv),
      cwd: optional(nonEmptyString),
      // a value may be a secret: a wrong one is shown by its type only
      env: optional(env),
    }),
  // a state read back from a trail is evidence: only the exact shapes observe returns
  state: (input: unknown): ExecCommandState => checkState(input),
  describe: (p) => `run ${argvShown(p.command)} (undo: ${argvShown(p.undo)})`,

  observe: (ctx, p) => observeState(ctx, p),

  async apply(ctx, p) {
    await ctx.host.exec(p.command, options(ctx, p));
    if (!p.check) await writeMarker(ctx.host, p, `${ctx.runId}/${ctx.step}`);
  },

  // Cannot restore more than the undo command restores; without `check`, drift is invisible.
  async undo(ctx, p, before) {
    if (!!p.check !== "stdout" in before) {
      throw fail("the recorded state does not fit the step's params", {
        expected: p.check ? "the output of check ({ stdout, code })" : "a marker state ({ appliedBy })",
        found: before,
        hint: "the trail does not belong to this step's params (was `check` added or removed?); undo it by hand",
      });
    }
    // undo runs at most once per change: a state already back at `before` is left alone
    if (deepEqual(await observeState(ctx, p), before)) return;
    await ctx.host.exec(p.undo, options(ctx, p));
    if (!p.check && "appliedBy" in before) await writeMarker(ctx.host, p, before.appliedBy);
  },

  // writing the marker goes through a temp name beside it: an interrupted write leaves that behind
  async cleanup(ctx, p) {
    if (p.check) return;
    const path = markerPath(ctx.host, p);
    const dir = path.slice(0, path.lastIndexOf("/"));
    const prefix = tempPrefix(path);
    const names = await ctx.host.readdir(dir).catch((error: unknown) => {
      if (isNotFound(error)) return [];
      throw error;
    });
    for (const name of names.filter((n) => n.startsWith(prefix))) {
      await ctx.host.rm(`${dir}/${name}`, { force: true });
    }
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

/** The exact shapes `observeState` returns; anything else in a trail is refused. */
function checkState(input: unknown): ExecCommandState {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new ParamsFieldError(
      "",
      `expected { stdout, code } or { appliedBy }, found ${clip(show(input), 200)}`,
    );
  }
  const keys = Object.keys(input).sort().join(",");
  const o = input as Record<string, unknown>;
  if (keys === "code,stdout") {
    if (typeof o.stdout !== "string" || o.stdout !== o.stdout.trim()) {
      throw new ParamsFieldError(
        "stdout",
        `expected check's trimmed output, found ${clip(show(o.stdout), 200)}`,
      );
    }
    const code = o.code;
    if (code !== null && !(typeof code === "number" && Number.isInteger(code) && code >= 0 && code <= 255)) {
      throw new ParamsFieldError("code", `expected an exit code 0-255 or null (killed), found ${show(code)}`);
    }
    return { stdout: o.stdout, code };
  }
  if (keys === "appliedBy") {
    const by = o.appliedBy;
    // `<runId>/<step>`: one line, as run ids and step names are
    if (
      by !== null &&
      !(typeof by === "string" && /^[^/\0\r\n]+\/[^\0\r\n]+$/.test(by) && by.length <= 512)
    ) {
      throw new ParamsFieldError("appliedBy", `expected "<runId>/<step>" or null, found ${show(by)}`);
    }
    return { appliedBy: by };
  }
  throw new ParamsFieldError(
    "",
    `expected { stdout, code } or { appliedBy }, found keys ${show(Object.keys(input))}`,
  );
}

function argvShown(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}

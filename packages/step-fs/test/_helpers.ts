import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AnyStepKind, type Host, localHost, type StepContext, validateParams } from "@atomkit/core";
import { stepContext } from "@atomkit/testkit";

export interface Sandbox {
  /** A fresh temp dir; the host's stateDir is `<root>/state`, everything else goes in `<root>/app`. */
  root: string;
  app: string;
  host: Host;
  cleanup: () => Promise<void>;
}

export async function sandbox(): Promise<Sandbox> {
  const root = await mkdtemp(join(tmpdir(), "atomkit-fs-"));
  return {
    root,
    app: join(root, "app"),
    host: localHost({ stateDir: join(root, "state") }),
    cleanup: () => rm(root, { recursive: true, force: true, maxRetries: 10 }),
  };
}

/**
 * The same machine seen as a remote host: `local` is false, so steps take their remote paths (upload,
 * then `tar`/`cp` through exec, hash on the host), exactly what they do over SSH.
 */
export const asRemote = (host: Host): Host => ({ ...host, name: `${host.name} (as remote)`, local: false });

type Op = "rename" | "writeFile" | "mkdir" | "upload";

/**
 * A host whose chosen operation fails once when armed: `after` lets it land first (the connection
 * drops after the change), `before` fails without doing it; `skip` lets that many calls pass first.
 */
export function flaky(host: Host, op: Op, when: "before" | "after", skip = 0) {
  const state = { armed: false, skip };
  const fail = () => {
    if (!state.armed) return false;
    if (state.skip > 0) {
      state.skip--;
      return false;
    }
    state.armed = false;
    return true;
  };
  const wrap =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const now = fail();
      if (now && when === "before") throw new Error(`injected: ${op} failed`);
      const result = await fn(...args);
      if (now) throw new Error(`injected: connection lost after ${op}`);
      return result;
    };
  const wrapped: Host = { ...host, [op]: wrap(host[op] as (...args: unknown[]) => Promise<unknown>) };
  return {
    host: wrapped,
    arm: () => {
      state.armed = true;
      state.skip = skip;
    },
  };
}

export const ctxOf = (host: Host, runId = "test-run"): StepContext => stepContext({ host, runId });

/** A kind bound to validated params: observe/apply/undo called directly, as the contract suite does. */
export async function bound<S = unknown>(kind: AnyStepKind, host: Host, input: unknown, runId?: string) {
  const v = await validateParams(kind(input));
  if (v.issues) throw new Error(JSON.stringify(v.issues));
  const d = kind.definition;
  const ctx = ctxOf(host, runId);
  return {
    params: v.value,
    observe: () => d.observe(ctx, v.value) as Promise<S>,
    apply: (before: S) => d.apply(ctx, v.value, before) as Promise<void>,
    undo: (before: S, after: S) => d.undo(ctx, v.value, before, after) as Promise<void>,
  };
}

/** Names a shell would mangle, usable as one path segment. */
export { HOSTILE_STRINGS } from "@atomkit/testkit";
export const segmentSafe = (s: string) => s !== "" && s !== "." && s !== ".." && !s.includes("/");

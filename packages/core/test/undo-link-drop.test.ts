import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  atom,
  defineStep,
  fileTrail,
  type Host,
  HostError,
  isNotFound,
  localHost,
  type RunEvent,
  recover,
  run,
  undoRun,
} from "../src/index";
import { tempDir } from "./_helpers";

// Issue #16: a link that drops while a rollback looks at the host (the observe before an undo) must
// not end the rollback as rollback-failed: the observe is retried like the undo itself, then the undo
// is verified. The host is real (local files); only the dropped link is faked, on the read side.

const KEY = "link-drop-test-passphrase";

const put = defineStep({
  kind: "test.put",
  params: (p: { path: string; content: string; fail?: boolean }) => p,
  observe: async (ctx, p) => {
    if (!(await ctx.host.stat(p.path))) return null;
    return (await ctx.host.readFile(p.path)).toString("utf8");
  },
  apply: async (ctx, p) => {
    await ctx.host.writeFile(p.path, p.content);
    if (p.fail) throw new Error("health check failed");
  },
  undo: async (ctx, p, before) => {
    if (before === null) await ctx.host.rm(p.path, { force: true });
    else await ctx.host.writeFile(p.path, before);
  },
});

const READS = ["stat", "lstat", "readFile", "readlink", "readdir", "hash"] as const;

/** localHost whose next `drops` read calls fail with reason CONNECTION, as a dropped SSH link does. */
function flakyHost(stateDir: string) {
  const real = localHost({ stateDir });
  const state = { drops: 0, dropped: 0 };
  const host = { ...real } as Host;
  for (const op of READS) {
    const original = real[op] as (...args: unknown[]) => Promise<unknown>;
    (host as unknown as Record<string, unknown>)[op] = (...args: unknown[]) => {
      if (state.drops > 0) {
        state.drops--;
        state.dropped++;
        return Promise.reject(
          new HostError("CONNECTION", `${op} failed: the connection dropped (injected)`, { host: real.name }),
        );
      }
      return original(...args);
    };
  }
  return { host, state };
}

let dir: string;
let cleanup: () => Promise<void>;
let root: string;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir("atomkit-drop-"));
  root = join(dir, "tree");
  await mkdir(root);
  await writeFile(join(root, "a"), "a v1");
});
afterEach(() => cleanup());

const read = (path: string) =>
  readFile(path, "utf8").catch((e) => (isNotFound(e) ? null : Promise.reject(e)));
const steps = (fail: boolean) => [
  put({ path: join(dir, "tree/a"), content: "a v2" }, { name: "a" }),
  put({ path: join(dir, "tree/b"), content: "b v2", fail }, { name: "b" }),
];

describe("a link drop while the rollback observes", () => {
  it("run: the observe before each undo is retried, then the undo verified", async () => {
    const { host, state } = flakyHost(join(dir, "state"));
    const events: RunEvent[] = [];
    const result = await run(atom("rel", { steps: steps(true) }), {
      host,
      trail: fileTrail({ dir: join(dir, "trails"), key: KEY }),
      backoffMs: 1,
      onEvent: (e) => {
        events.push(e);
        // the link drops as the rollback starts, and again as it moves on to the next step
        if (e.type === "rollback:start" || e.type === "step:undone") state.drops = 1;
      },
    });
    expect(result.status, result.error?.message).toBe("rolled-back");
    expect(result.steps.map((s) => [s.name, s.status, s.verified])).toEqual([
      ["a", "undone", true],
      ["b", "undone", true],
    ]);
    expect(state.dropped).toBe(2);
    const retried = events.flatMap((e) => (e.type === "step:retry" && e.undo ? [e.step] : []));
    expect(retried).toEqual(["b", "a"]);
    expect([await read(join(root, "a")), await read(join(root, "b"))]).toEqual(["a v1", null]);
  });

  it("undo <runId>: a drop in the drift check and in the observe before the undo are retried", async () => {
    const trail = fileTrail({ dir: join(dir, "trails"), key: KEY });
    const { host, state } = flakyHost(join(dir, "state"));
    const committed = await run(atom("rel", { steps: steps(false) }), { host, trail });
    expect(committed.status).toBe("committed");
    state.drops = 1; // the drift check, before anything is undone
    const result = await undoRun(trail, committed.runId, {
      host,
      steps: [put],
      backoffMs: 1,
      onEvent: (e) => {
        if (e.type === "rollback:start") state.drops = 1;
      },
    });
    expect(result.status, result.error?.message).toBe("rolled-back");
    expect(state.dropped).toBe(2);
    expect([await read(join(root, "a")), await read(join(root, "b"))]).toEqual(["a v1", null]);
  });

  it("recover: a drop in the observe before the undo is retried", async () => {
    const trail = fileTrail({ dir: join(dir, "trails"), key: KEY });
    const { host, state } = flakyHost(join(dir, "state"));
    const committed = await run(atom("rel", { steps: steps(false) }), { host, trail });
    // the process "died" after its last step, before its end record
    const file = join(dir, "trails", `${committed.runId}.jsonl`);
    const lines = (await readFile(file, "utf8")).trimEnd().split("\n");
    await writeFile(file, `${lines.slice(0, -1).join("\n")}\n`);
    const [result] = await recover(trail, {
      host,
      steps: [put],
      rollbackCommitted: true,
      backoffMs: 1,
      onEvent: (e) => {
        if (e.type === "rollback:start") state.drops = 1;
      },
    });
    expect(result?.status, result?.error?.message).toBe("rolled-back");
    expect(state.dropped).toBe(1);
    expect([await read(join(root, "a")), await read(join(root, "b"))]).toEqual(["a v1", null]);
  });
});

import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atom, fileTrail, type Host, localHost, run, undoRun, validateParams } from "@atomkit/core";
import { describeStepContract, diffTrees, snapshotTree } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { setKey } from "../src/index";

/**
 * A temp root with the hashed data directory and the host's stateDir side by side: the state directory
 * (locks, backups) changes on every run, so it must stay out of what "back as before" compares.
 */
async function tempRoot() {
  const root = await mkdtemp(join(tmpdir(), "atomkit-kv-"));
  const data = join(root, "data");
  await mkdir(data);
  return { root, data, host: localHost({ stateDir: join(root, "state") }) };
}

/** A host whose next writeFile lands and then fails, as a link dropped after the rename would. */
function flaky(host: Host) {
  let broken = false;
  const wrapped: Host = {
    ...host,
    writeFile: async (...args: Parameters<Host["writeFile"]>) => {
      await host.writeFile(...args);
      if (broken) {
        broken = false;
        throw new Error("link dropped after the write");
      }
    },
  };
  return {
    host: wrapped,
    breakNext: () => {
      broken = true;
    },
  };
}

const kv = (data: Record<string, string>) => `${JSON.stringify(data, null, 2)}\n`;

describeStepContract({
  name: "kv.set on an existing file (other keys kept)",
  idempotent: true,
  async setup() {
    const { root, data, host } = await tempRoot();
    const file = join(data, "flags.json");
    await writeFile(file, kv({ mode: "blue", checkout: "off", region: "eu" }), { mode: 0o640 });
    const f = flaky(host);
    return {
      host: f.host,
      step: () => setKey({ file, key: "checkout", value: "on" }),
      snapshot: () => snapshotTree(data),
      breakApply: f.breakNext,
      cleanup: () => rm(root, { recursive: true, force: true, maxRetries: 10 }),
    };
  },
});

describeStepContract({
  name: "kv.set creating the file (undo removes it again)",
  idempotent: true,
  async setup() {
    const { root, data, host } = await tempRoot();
    const f = flaky(host);
    return {
      host: f.host,
      step: () => setKey({ file: join(data, "new.json"), key: "feature.x", value: "" }),
      snapshot: () => snapshotTree(data),
      breakApply: f.breakNext,
      cleanup: () => rm(root, { recursive: true, force: true, maxRetries: 10 }),
    };
  },
});

describe("kv.set", () => {
  let t: Awaited<ReturnType<typeof tempRoot>>;
  beforeEach(async () => {
    t = await tempRoot();
  });
  afterEach(() => rm(t.root, { recursive: true, force: true, maxRetries: 10 }));

  it("reports every invalid field at once, and runs nothing", async () => {
    const bad = setKey({ file: "flags.json", key: "9 lives", value: 9, colour: "red" } as never);
    const v = await validateParams(bad);
    expect(v.issues?.map((i) => i.path).sort()).toEqual(["colour", "file", "key", "value"]);

    const refused = await run(atom("bad", { steps: [bad] }), { host: t.host, lock: false }).catch((e) => e);
    expect(refused.code).toBe("ATOM_PARAMS_INVALID");
    for (const field of ["colour", "file", "key", "value"])
      expect(refused.message).toContain(`field "${field}"`);
  });

  it("is undone from its trail by a new process (registered kinds, states from the file)", async () => {
    const file = join(t.data, "flags.json");
    await writeFile(file, kv({ checkout: "off" }));
    const picture = await snapshotTree(t.data);
    const trail = fileTrail({ dir: join(t.root, "trails"), key: false });
    const done = await run(atom("flags", { steps: [setKey({ file, key: "checkout", value: "on" })] }), {
      host: t.host,
      trail,
    });
    expect(done.status, done.error?.message).toBe("committed");
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ checkout: "on" });

    // a new process: a fresh trail reader and host, the kind known only by its package's `steps`
    const { steps } = await import("../src/index");
    const undone = await undoRun(fileTrail({ dir: join(t.root, "trails"), key: false }), done.runId, {
      host: localHost({ stateDir: join(t.root, "state") }),
      steps,
      roots: [t.data],
    });
    expect(undone.status, undone.error?.message).toBe("rolled-back");
    expect(undone.steps[0]).toMatchObject({ status: "undone", verified: true });
    expect(diffTrees(picture, await snapshotTree(t.data))).toEqual([]);
  });

  it("refuses, changing nothing, a file that is not a JSON object or a key that is not a string", async () => {
    const file = join(t.data, "flags.json");
    for (const content of ["[1, 2]", "{ not json", `{"checkout": 1}`]) {
      await writeFile(file, content);
      const r = await run(atom("flags", { steps: [setKey({ file, key: "checkout", value: "on" })] }), {
        host: t.host,
        lock: false,
      });
      expect(r.status).toBe("rolled-back"); // nothing was applied, so nothing to undo
      expect(r.steps[0]?.status).not.toBe("undone");
      expect(r.error?.message).toMatch(/left untouched/);
      expect(r.error?.hint).toMatch(/by hand/);
      expect(await readFile(file, "utf8")).toBe(content);
    }
  });
});

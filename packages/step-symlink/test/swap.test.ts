import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readdir, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  atom,
  DriftError,
  defineStep,
  fileTrail,
  type Host,
  localHost,
  memoryTrail,
  ParamsError,
  recover,
  run,
  type StepContext,
  undoRun,
  validateParams,
} from "@atomkit/core";
import { ParamsFieldError } from "@atomkit/core/kit";
import { describeStepContract, HOSTILE_STRINGS, hashTree, stepContext } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { type SwapSymlinkParams, type SymlinkState, steps, swapSymlink } from "../src/index";

const here = fileURLToPath(new URL(".", import.meta.url));

/** The step the crash fixture hangs in (same kind as in fixtures/crash-run.mjs); recover only observes it. */
const hang = defineStep({
  kind: "test.hang",
  params: (p: null) => p,
  observe: async () => null,
  apply: async () => {
    throw new Error("only the crash fixture applies this step");
  },
  undo: async () => {},
});

interface Fixture {
  dir: string;
  host: Host;
  cleanup: () => Promise<void>;
}

/** A temp dir with releases/1 and releases/2; `current` → releases/1 unless told otherwise. */
async function makeTree(current: "releases/1" | null = "releases/1"): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), "atomkit-symlink-"));
  await mkdir(join(dir, "app", "releases", "1"), { recursive: true });
  await mkdir(join(dir, "app", "releases", "2"), { recursive: true });
  await writeFile(join(dir, "app", "releases", "1", "VERSION"), "1");
  await writeFile(join(dir, "app", "releases", "2", "VERSION"), "2");
  if (current) await symlink(current, join(dir, "app", "current"));
  return {
    dir,
    host: localHost({ stateDir: join(dir, "state") }),
    cleanup: () => rm(dir, { recursive: true, force: true, maxRetries: 10 }),
  };
}

/** A host whose next rename lands and then fails, as if the connection dropped right after it. */
function flakyRename(host: Host) {
  const state = { broken: false };
  const wrapped: Host = {
    ...host,
    rename: async (from, to) => {
      await host.rename(from, to);
      if (state.broken) {
        state.broken = false;
        throw new Error("connection lost after the rename");
      }
    },
  };
  return { host: wrapped, state };
}

const ctxOf = (host: Host): StepContext => stepContext({ host, step: "symlink.swap" });

async function bound(host: Host, input: Parameters<typeof swapSymlink>[0]) {
  const step = swapSymlink(input);
  const v = await validateParams(step);
  if (v.issues) throw new Error(JSON.stringify(v.issues));
  const p = v.value as never;
  const d = swapSymlink.definition;
  const ctx = ctxOf(host);
  return {
    observe: () => d.observe(ctx, p),
    apply: (before: SymlinkState) => d.apply(ctx, p, before),
    undo: (before: SymlinkState, after: SymlinkState) => d.undo(ctx, p, before, after),
  };
}

describeStepContract({
  name: "symlink.swap: existing link → new release",
  idempotent: true,
  async setup() {
    const f = await makeTree();
    const flaky = flakyRename(f.host);
    return {
      host: flaky.host,
      step: () => swapSymlink({ link: join(f.dir, "app", "current"), target: "releases/2" }),
      snapshot: () => hashTree(join(f.dir, "app")),
      breakApply: () => {
        flaky.state.broken = true;
      },
      cleanup: f.cleanup,
    };
  },
});

describeStepContract({
  name: "symlink.swap: no link yet (undo removes it)",
  idempotent: true,
  async setup() {
    const f = await makeTree(null);
    const flaky = flakyRename(f.host);
    return {
      host: flaky.host,
      step: () => swapSymlink({ link: join(f.dir, "app", "current"), target: "releases/1" }),
      snapshot: () => hashTree(join(f.dir, "app")),
      breakApply: () => {
        flaky.state.broken = true;
      },
      cleanup: f.cleanup,
    };
  },
});

describe("symlink.swap: ugly paths", () => {
  let f: Fixture;
  beforeEach(async () => {
    f = await makeTree();
  });
  afterEach(() => f.cleanup());

  it("refuses bad params before anything runs, naming the field", async () => {
    const picture = await hashTree(f.dir);
    const bad = [
      [{ link: "relative/current", target: "releases/2" }, "link"],
      [{ link: join(f.dir, "app", "current"), target: "" }, "target"],
      [{ link: join(f.dir, "app", "current"), target: "a\0b" }, "target"],
      [{ link: join(f.dir, "app", "current"), target: "releases/2", mustExist: "yes" }, "mustExist"],
      [{ link: join(f.dir, "app", "current"), target: "releases/2", tagret: "x" }, "tagret"],
      [{ link: "/", target: "x" }, "link"],
    ] as const;
    for (const [params, field] of bad) {
      const attempt = run(
        atom("bad", {
          steps: [swapSymlink(params as never)],
        }),
        { host: f.host, lock: false },
      );
      await expect(attempt).rejects.toBeInstanceOf(ParamsError);
      await expect(attempt).rejects.toMatchObject({ issues: [{ path: field }] });
    }
    expect(await hashTree(f.dir)).toBe(picture);
  });

  it("reports every invalid field at once, with the key meant for a typo", async () => {
    const v = await validateParams(
      swapSymlink({ link: "current", target: "", mustExist: "yes", tagret: "x" } as never),
    );
    expect(v.issues?.map((i) => [i.path, i.message])).toEqual([
      ["link", 'expected an absolute path on the host, found "current"'],
      ["target", 'expected a non-empty string, found ""'],
      ["mustExist", 'expected true or false, found "yes"'],
      ["tagret", 'unknown param "tagret"; did you mean "target"? (known: link, target, mustExist)'],
    ]);
  });

  for (const kind of ["directory", "file"] as const) {
    it(`refuses when link is a real ${kind}, which is left untouched`, async () => {
      const link = join(f.dir, "app", "shared");
      if (kind === "directory") {
        await mkdir(link);
        await writeFile(join(link, "data"), "precious");
      } else await writeFile(link, "precious");
      const picture = await hashTree(f.dir);
      const result = await run(atom("refuse", { steps: [swapSymlink({ link, target: "releases/2" })] }), {
        host: f.host,
        lock: false,
      });
      expect(result.status).toBe("rolled-back");
      expect(result.steps[0]?.status).toBe("failed-unchanged");
      expect(result.error?.message).toContain("is not a symlink");
      expect(result.error?.message).toContain(`a ${kind}`);
      expect(result.error?.hint).toContain("fs.remove");
      expect(await hashTree(f.dir)).toBe(picture);
    });
  }

  it("refuses a target that does not exist unless mustExist is false", async () => {
    const link = join(f.dir, "app", "current");
    const picture = await hashTree(f.dir);
    const refused = await run(atom("typo", { steps: [swapSymlink({ link, target: "releases/3" })] }), {
      host: f.host,
      lock: false,
    });
    expect(refused.status).toBe("rolled-back");
    expect(refused.error?.message).toContain("does not exist");
    expect(await hashTree(f.dir)).toBe(picture);

    const ok = await run(
      atom("dangling", { steps: [swapSymlink({ link, target: "releases/3", mustExist: false })] }),
      { host: f.host, lock: false },
    );
    expect(ok.status).toBe("committed");
    expect(await readlink(link)).toBe("releases/3");
  });

  it("treats hostile names literally, in the link and in the target", async () => {
    const names = HOSTILE_STRINGS.filter((s) => s && !s.includes("/") && s !== "." && s !== "..");
    const app = join(f.dir, "app");
    for (const name of names) await mkdir(join(app, "releases", `r ${name}`));
    const picture = await hashTree(f.dir);
    for (const name of names) {
      const link = join(app, `link ${name}`);
      const s = await bound(f.host, { link, target: `releases/r ${name}` });
      const before = await s.observe();
      expect(before).toEqual({ type: "missing" });
      await s.apply(before);
      const after = await s.observe();
      expect(after).toEqual({ type: "symlink", target: `releases/r ${name}` });
      expect(await readlink(link)).toBe(`releases/r ${name}`);
      await s.undo(before, after);
    }
    expect(await hashTree(f.dir)).toBe(picture);
    // any string is a valid link target, "/" included: stored byte for byte, never run
    const link = join(app, "raw");
    for (const target of HOSTILE_STRINGS.filter((t) => t !== "")) {
      const s = await bound(f.host, { link, target, mustExist: false });
      await s.apply(await s.observe());
      expect(await readlink(link)).toBe(target);
    }
    expect(existsSync("/tmp/atomkit-pwned")).toBe(false);
  });

  it("reports drift instead of undoing when someone re-pointed the link", async () => {
    const link = join(f.dir, "app", "current");
    const trail = memoryTrail();
    const ok = await run(atom("deploy", { steps: [swapSymlink({ link, target: "releases/2" })] }), {
      host: f.host,
      trail,
      lock: false,
    });
    expect(ok.status).toBe("committed");
    await mkdir(join(f.dir, "app", "releases", "3"));
    await rm(link);
    await symlink("releases/3", link);
    await expect(undoRun(trail, ok.runId, { host: f.host, steps, lock: false })).rejects.toBeInstanceOf(
      DriftError,
    );
    expect(await readlink(link)).toBe("releases/3");
    const forced = await undoRun(trail, ok.runId, { host: f.host, steps, lock: false, force: true });
    expect(forced.status).toBe("rolled-back");
    expect(await readlink(link)).toBe("releases/1");
  });

  it("a run killed after the swap is rolled back by recover in a new process, from the trail alone", async () => {
    const link = join(f.dir, "app", "current");
    const trails = join(f.dir, "trails");
    const picture = await hashTree(join(f.dir, "app"));
    const child = spawn(process.execPath, [join(here, "fixtures", "crash-run.mjs"), f.dir, trails], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    // also when the test fails or times out: the deployer hangs on purpose until killed
    onTestFinished(() => {
      child.kill("SIGKILL");
    });
    const closed = once(child, "close");
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    // the child prints "swapped" from the step after the swap, then hangs: kill it as a crash would
    while (!out.includes("swapped")) {
      if (child.exitCode !== null) throw new Error(`child exited early: ${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGKILL");
    await closed;
    expect(await readlink(link)).toBe("releases/2");

    const results = await recover(fileTrail({ dir: trails }), {
      host: localHost({ stateDir: join(f.dir, "state") }),
      steps: [...steps, hang],
      lock: false,
      backoffMs: 1,
    });
    expect(results).toHaveLength(1);
    expect(results[0]?.status).toBe("rolled-back");
    expect(results[0]?.steps.find((s) => s.kind === "symlink.swap")).toMatchObject({
      status: "undone",
      verified: true,
    });
    expect(await readlink(link)).toBe("releases/1");
    expect(await hashTree(join(f.dir, "app"))).toBe(picture);
  });
});

describe("symlink.swap: atomicity", () => {
  let f: Fixture;
  beforeEach(async () => {
    f = await makeTree();
  });
  afterEach(() => f.cleanup());

  it("a concurrent reader never sees the link missing during 1,000 swaps and undos", async ({
    onTestFinished,
    signal,
  }) => {
    const link = join(f.dir, "app", "current");
    const stop = join(f.dir, "stop");
    const reader = spawn(process.execPath, [join(here, "fixtures", "reader.mjs"), link, stop], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    // also when the test fails or times out: no reader left spinning while the tree is removed
    onTestFinished(() => {
      reader.kill("SIGKILL");
    });
    const closed = once(reader, "close");
    let out = "";
    reader.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    while (!out.includes("ready")) {
      if (reader.exitCode !== null) throw new Error(`reader exited early: ${out}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const s = await bound(f.host, { link, target: "releases/2" });
    // at least 1,000, and on until the reader raced them for real; a timed-out test stops (signal)
    for (let i = 0; (i < 1000 || !out.includes("enough")) && !signal.aborted; i++) {
      const before = await s.observe();
      await s.apply(before);
      const after = await s.observe();
      await s.undo(before, after);
    }
    await writeFile(stop, "");
    await closed;
    const line = out.trim().split("\n").at(-1) ?? "";
    const stats = JSON.parse(line) as { reads: number; missing: number; targets: Record<string, number> };
    expect(stats.missing, `reader saw the link missing: ${line}`).toBe(0);
    expect(stats.reads).toBeGreaterThan(1000);
    // both targets were seen, so the reader really raced the swaps
    expect(Object.keys(stats.targets).sort()).toEqual(["releases/1", "releases/2"]);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe("releases/1");
  });
});

describe("symlink.swap: recorded states, owned paths, leftovers", () => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await makeTree();
  });
  afterEach(() => fx.cleanup());

  const check = swapSymlink.definition.state as (input: unknown) => unknown;

  it("accepts, unchanged, every state observe returns", async () => {
    await writeFile(join(fx.dir, "app", "file"), "x");
    const ctx = ctxFor(fx.host);
    for (const link of ["current", "file", "releases", "nothing"]) {
      const params = { link: join(fx.dir, "app", link), target: "releases/2", mustExist: true };
      const state = JSON.parse(JSON.stringify(await swapSymlink.definition.observe(ctx, params)));
      expect(check(state)).toEqual(state);
    }
  });

  const forged: Array<[unknown, string]> = [
    [null, ""],
    [[{ type: "missing" }], ""],
    [{ type: "socket" }, "type"],
    [{ type: "symlink" }, "target"],
    [{ type: "symlink", target: "" }, "target"],
    [{ type: "symlink", target: "a\0b" }, "target"],
    [{ type: "symlink", target: 42 }, "target"],
    [{ type: "symlink", target: "releases/1", inode: 7 }, "inode"],
    [{ type: "missing", target: "releases/1" }, "target"],
    [{ type: "directory", mode: 0o755 }, "mode"],
  ];
  for (const [input, field] of forged) {
    it(`refuses the forged state ${JSON.stringify(input)}, naming "${field}"`, () => {
      let thrown: unknown;
      try {
        check(input);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ParamsFieldError);
      expect((thrown as ParamsFieldError).path).toBe(field);
    });
  }

  it("owns the link", async () => {
    const v = await validateParams(swapSymlink({ link: "/srv/app/./current/", target: "releases/2" }));
    if (v.issues) throw new Error(JSON.stringify(v.issues));
    expect(swapSymlink.definition.owns!(v.value as SwapSymlinkParams)).toEqual(["/srv/app/current"]);
  });

  it("cleanup removes the temporary links beside the link, and nothing else", async () => {
    const app = join(fx.dir, "app");
    await symlink("releases/2", join(app, ".current.atomkit-1a2b3c4d")); // an interrupted swap
    await symlink("releases/1", join(app, ".current.atomkit-0badf00d")); // an interrupted undo
    await writeFile(join(app, ".current.atomkit-file"), "not a link: not ours");
    await symlink("releases/1", join(app, ".current2.atomkit-1a2b3c4d")); // another link's temp
    await symlink("releases/1", join(app, "current.atomkit-1")); // not a hidden temp name
    const params = { link: join(app, "current"), target: "releases/2", mustExist: true };
    const ctx = ctxFor(fx.host);
    const before = await swapSymlink.definition.observe(ctx, params);
    await swapSymlink.definition.cleanup!(ctx, params);
    expect((await readdir(app)).sort()).toEqual(
      [
        ".current.atomkit-file",
        ".current2.atomkit-1a2b3c4d",
        "current",
        "current.atomkit-1",
        "releases",
      ].sort(),
    );
    expect(await swapSymlink.definition.observe(ctx, params)).toEqual(before);
    await swapSymlink.definition.cleanup!(ctx, { ...params, link: join(app, "no", "such", "current") });
  });

  it("undo of a committed swap works after a later swap was rolled back (no drift)", async () => {
    await mkdir(join(fx.dir, "app", "releases", "3"));
    const link = join(fx.dir, "app", "current");
    const trail = fileTrail({ dir: join(fx.dir, "trails") });
    const boom = defineStep({
      kind: "test.boom",
      params: (p: null) => p,
      observe: async () => null,
      apply: async () => {
        throw new Error("injected");
      },
      undo: async () => {},
    });
    const first = await run(atom("a", { steps: [swapSymlink({ link, target: "releases/2" })] }), {
      host: fx.host,
      trail,
      lock: false,
    });
    expect(first.status).toBe("committed");
    const second = await run(
      atom("b", { steps: [swapSymlink({ link, target: "releases/3" }), boom(null)] }),
      {
        host: fx.host,
        trail,
        lock: false,
      },
    );
    expect(second.status).toBe("rolled-back");
    expect(await readlink(link)).toBe("releases/2");
    const undone = await undoRun(trail, first.runId, { host: fx.host, lock: false, steps: [...steps, boom] });
    expect(undone.error).toBeUndefined();
    expect(undone.steps[0]).toMatchObject({ status: "undone", verified: true });
    expect(await readlink(link)).toBe("releases/1");
  });
});

function ctxFor(host: Host): StepContext {
  return stepContext({ host, step: "swap" });
}

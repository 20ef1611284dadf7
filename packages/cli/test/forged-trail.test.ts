import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Atom,
  atom,
  fileTrail,
  type Json,
  localHost,
  type RecoverOptions,
  recover,
  run,
  type TrailRunOptions,
  undoRun,
} from "@atomkit/core";
import { steps as fsSteps, untar } from "@atomkit/step-fs";
import { steps as processSteps, startProcess, stopProcess } from "@atomkit/step-process";
import { swapSymlink, steps as symlinkSteps } from "@atomkit/step-symlink";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  alive,
  appendSealed,
  existsSync,
  forgedRunId,
  killProcessesIn,
  makeArchive,
  proofPath,
  runRecords,
  snapshot,
  trailLines,
  writeLines,
  writeUnsealed,
} from "./_forge";

// Issue #16: a trail is evidence, never a command. Each attack of the field report, against the real
// engine, the real step kinds and real files: a forged record must be refused with a clear error before
// anything changes (files hashed before and after, the running app still alive, no proof file).

const kinds = [...fsSteps, ...processSteps, ...symlinkSteps];

let root: string;
let deploy: string;
let sibling: string;
let trailDir: string;
let key: Buffer;
let archive: string;
let proof: string;
let host: ReturnType<typeof localHost>;
const trail = () => fileTrail({ dir: trailDir, key });

/** The deploy file's atom: the worked example of DESIGN.md (untar, stop, swap, start). */
function release(n: number): Atom {
  return atom("release", {
    steps: [
      untar({ archive, path: `${deploy}/releases/${n}` }, { name: "unpack" }),
      stopProcess({ pidFile: `${deploy}/run/app.pid` }, { name: "stop" }),
      swapSymlink({ link: `${deploy}/current`, target: `releases/${n}` }, { name: "link" }),
      startProcess(
        { command: ["sleep", "600"], cwd: `${deploy}/current`, pidFile: `${deploy}/run/app.pid` },
        { name: "start" },
      ),
    ],
  });
}

let genuine: string;
let appPid: number;
let untouched: () => Promise<void>;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "atomkit-forged-"));
  deploy = join(root, "deploy");
  sibling = join(root, "sibling");
  trailDir = join(root, "trails");
  await mkdir(join(deploy, "releases"), { recursive: true });
  await mkdir(join(deploy, "run"), { recursive: true });
  await mkdir(join(sibling, "data"), { recursive: true });
  await writeFile(join(sibling, "data", "canary"), "precious");
  archive = await makeArchive(root, "app", "<h1>v1</h1>");
  key = randomBytes(32);
  proof = proofPath();
  host = localHost({ stateDir: join(root, "state") });
  const r = await run(release(1), { host, trail: trail() });
  expect(r.status, r.error?.message).toBe("committed");
  genuine = r.runId;
  appPid = Number((await readFile(join(deploy, "run/app.pid"), "utf8")).trim());
  expect(await alive(appPid)).toBe(true);
  const before = await snapshot({ deploy, sibling });
  untouched = async () => {
    expect(await snapshot({ deploy, sibling })).toEqual(before);
    expect(await alive(appPid)).toBe(true);
    expect(existsSync(proof)).toBe(false);
  };
});

afterEach(async () => {
  await killProcessesIn(root);
  await rm(proof, { force: true });
  await rm(root, { recursive: true, force: true });
});

/** The genuine run's recorded step info, by name (what a forger copies and edits). */
async function genuineStep(name: string): Promise<Record<string, unknown>> {
  const [start] = await trailLines(trailDir, genuine);
  const s = (start!.steps as Array<Record<string, unknown>>).find((x) => x.name === name);
  return structuredClone(s!);
}

const refusal = (e: unknown) => e as { code?: string; message?: string; step?: string };

async function refused(p: Promise<unknown>, code = "ATOM_TRAIL_INVALID") {
  const e = await p.then(
    (r) => ({ resolved: r }),
    (err: unknown) => err,
  );
  expect(refusal(e).code, JSON.stringify(e, null, 1)?.slice(0, 2000)).toBe(code);
  return refusal(e);
}

const recoverWith = (runId: string, o: Partial<RecoverOptions> = {}) =>
  recover(trail(), { host, runId, steps: kinds, backoffMs: 0, ...o });
const undoWith = (runId: string, o: Partial<TrailRunOptions> = {}) =>
  undoRun(trail(), runId, { host, steps: kinds, backoffMs: 0, ...o });

describe("(a) a forged unfinished fs.untar whose path is a sibling of the deploy", () => {
  const forgedUntar = async (id: string) => {
    const info = await genuineStep("unpack");
    (info.params as Record<string, unknown>).path = join(sibling, "data");
    return runRecords(id, {
      steps: [info as never],
      records: [{ step: "unpack", status: "applying", before: { type: "missing" } }],
    });
  };

  it("written without the key: refused by the integrity check; recover of all unfinished runs skips it", async () => {
    const id = forgedRunId();
    await writeUnsealed(trailDir, id, await forgedUntar(id));
    const e = await refused(recoverWith(id), "ATOM_TRAIL_CORRUPT");
    expect(e.message).toMatch(/trail record 1 of run .* fails its integrity check \(it has no mac\)/);
    expect(await recover(trail(), { host, steps: kinds })).toEqual([]);
    expect((await trail().listRuns()).find((r) => r.runId === id)).toMatchObject({ status: "corrupt" });
    await untouched();
  });

  it("an edited line of a genuine sealed trail: refused by the integrity check", async () => {
    const lines = await trailLines(trailDir, genuine);
    const start = lines[0] as { steps: Array<{ name: string; params: { path: string } }> };
    start.steps[0]!.params.path = join(sibling, "data");
    // cut after the untar intent, so the run looks like it died while extracting
    const cut = lines.findIndex((l) => l.step === "unpack" && l.status === "applying");
    await writeLines(trailDir, genuine, lines.slice(0, cut + 1));
    const e = await refused(recoverWith(genuine), "ATOM_TRAIL_CORRUPT");
    expect(e.message).toMatch(/trail record 1 of run .* fails its integrity check/);
    await untouched();
  });

  describe("sealed with the real key (a key holder, or a buggy writer)", () => {
    it("roots refuse a path outside them", async () => {
      const id = forgedRunId();
      await appendSealed(trail(), id, await forgedUntar(id));
      const e = await refused(recoverWith(id, { roots: [deploy] }));
      expect(e.message).toMatch(/step "unpack" would change paths outside the allowed roots/);
      expect(e.message).toContain(join(sibling, "data"));
      await untouched();
    });

    it("the deploy file refuses a step that is not the one it builds", async () => {
      const id = forgedRunId();
      await appendSealed(trail(), id, await forgedUntar(id));
      const e = await refused(recoverWith(id, { atom: release(2) }));
      expect(e.message).toMatch(/step "unpack" differs from the one the run recorded/);
      await untouched();
    });

    it("without a deploy file or roots, fs.untar's undo still removes only a release it extracted", async () => {
      const id = forgedRunId();
      await appendSealed(trail(), id, await forgedUntar(id));
      const [r] = await recoverWith(id);
      expect(r?.status).toBe("rollback-failed");
      expect(r?.error?.message).toMatch(/is not the directory this step extracted/);
      await untouched();
    });
  });
});

describe("(b) a forged process.stop whose recorded launch is a shell command", () => {
  /** A launch that would create the proof file if undo ever started it. */
  const shellLaunch = async () => ({
    running: true,
    pid: 4_194_000,
    startTime: 1,
    bootId: (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim(),
    launch: {
      argv: ["sh", "-c", `id > ${proof}`],
      cwd: deploy,
      dir: deploy,
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      groups: [],
      env: {},
      secretEnv: [],
      clearEnv: false,
    },
    recorded: true,
    output: { stdout: null, stderr: null },
  });
  /** A committed run whose stop step "stopped" that launch: undo would start it again. */
  const forgedStop = async (
    id: string,
    edit: {
      params?: (p: Record<string, unknown>) => void;
      before?: (s: Record<string, unknown>) => void;
    } = {},
    unfinished = false,
  ) => {
    const info = await genuineStep("stop");
    const params = info.params as Record<string, unknown>;
    params.pidFile = `${deploy}/run/worker.pid`; // nothing runs there: no drift to stop the undo
    edit.params?.(params);
    const before = (await shellLaunch()) as unknown as Record<string, unknown>;
    edit.before?.(before);
    return runRecords(id, {
      steps: [info as never],
      records: unfinished
        ? [{ step: "stop", status: "applying", before: before as Json }]
        : [
            {
              step: "stop",
              status: "applied",
              before: before as Json,
              after: { running: false },
              changed: true,
            },
          ],
      ...(unfinished ? {} : { end: { status: "committed", final: { stop: { running: false } } } }),
    });
  };

  it("written without the key: undo and recover refuse it (integrity); nothing is started", async () => {
    const done = forgedRunId();
    await writeUnsealed(trailDir, done, await forgedStop(done));
    expect((await refused(undoWith(done), "ATOM_TRAIL_CORRUPT")).message).toMatch(
      /fails its integrity check/,
    );
    const dead = forgedRunId();
    await writeUnsealed(trailDir, dead, await forgedStop(dead, {}, true));
    expect((await refused(recoverWith(dead), "ATOM_TRAIL_CORRUPT")).message).toMatch(
      /fails its integrity check/,
    );
    await untouched();
  });

  it("an edited before-state in a genuine sealed trail: refused (integrity)", async () => {
    const lines = await trailLines(trailDir, genuine);
    const applied = lines.find((l) => l.step === "stop" && l.status === "applied")!;
    applied.before = (await shellLaunch()) as never;
    await writeLines(trailDir, genuine, lines);
    expect((await refused(undoWith(genuine), "ATOM_TRAIL_CORRUPT")).message).toMatch(
      /trail record \d+ of run .* integrity check/,
    );
    await untouched();
  });

  describe("sealed with the real key", () => {
    it("params its validator refuses (a relative pid file, an unknown param): refused", async () => {
      for (const edit of [
        (p: Record<string, unknown>) => {
          p.pidFile = "run/worker.pid";
        },
        (p: Record<string, unknown>) => {
          p.shell = "sh -c id";
        },
      ]) {
        const id = forgedRunId();
        await appendSealed(trail(), id, await forgedStop(id, { params: edit }));
        const e = await refused(undoWith(id));
        expect(e.message).toMatch(/the recorded params of step "stop" are refused by its kind/);
        expect(e.message).toMatch(/pidFile|shell/);
      }
      await untouched();
    });

    it("a state the kind could not have observed (argv as a shell string, an unknown field): refused", async () => {
      for (const edit of [
        (s: Record<string, unknown>) => {
          (s.launch as Record<string, unknown>).argv = `sh -c 'id > ${proof}'`;
        },
        (s: Record<string, unknown>) => {
          (s.launch as Record<string, unknown>).shell = true;
        },
      ]) {
        const id = forgedRunId();
        await appendSealed(trail(), id, await forgedStop(id, { before: edit }));
        const e = await refused(undoWith(id));
        expect(e.message).toMatch(/the recorded before-state of step "stop" is not a process.stop state/);
      }
      await untouched();
    });

    it("a pid file outside the roots: refused", async () => {
      const id = forgedRunId();
      await appendSealed(
        trail(),
        id,
        await forgedStop(id, {
          params: (p) => {
            p.pidFile = join(sibling, "app.pid");
          },
        }),
      );
      const e = await refused(undoWith(id, { roots: [deploy] }));
      expect(e.message).toMatch(/would change paths outside the allowed roots/);
      await untouched();
    });

    it("a recorded launch in a directory outside the roots (the params untouched): refused", async () => {
      const id = forgedRunId();
      await appendSealed(
        trail(),
        id,
        await forgedStop(id, {
          before: (s) => {
            (s.launch as Record<string, unknown>).dir = "/tmp";
            (s.launch as Record<string, unknown>).cwd = "/tmp";
          },
        }),
      );
      const e = await refused(undoWith(id, { roots: [deploy] }));
      expect(e.message).toMatch(/would change paths outside the allowed roots[\s\S]*\/tmp/);
      await untouched();
    });

    it("a step the deploy file does not build (another pid file): refused by undo and recover", async () => {
      const done = forgedRunId();
      await appendSealed(trail(), done, await forgedStop(done));
      const atomOf = {
        atom: () =>
          atom("release", { steps: [stopProcess({ pidFile: `${deploy}/run/app.pid` }, { name: "stop" })] }),
      };
      expect((await refused(undoWith(done, atomOf))).message).toMatch(
        /step "stop" differs from the one the run recorded/,
      );
      const dead = forgedRunId();
      await appendSealed(trail(), dead, await forgedStop(dead, {}, true));
      expect((await refused(recoverWith(dead, atomOf))).message).toMatch(
        /differs from the one the run recorded/,
      );
      await untouched();
    });
  });
});

describe("(c) a forged symlink.swap whose before-target is /etc/shadow", () => {
  const forgedSwap = async (
    id: string,
    edit: { params?: (p: Record<string, unknown>) => void; before?: Record<string, unknown> } = {},
  ) => {
    const info = await genuineStep("link");
    edit.params?.(info.params as Record<string, unknown>);
    const after = { type: "symlink", target: "releases/1" };
    return runRecords(id, {
      steps: [info as never],
      records: [
        {
          step: "link",
          status: "applied",
          before: (edit.before ?? { type: "symlink", target: "/etc/shadow" }) as Json,
          after,
          changed: true,
        },
      ],
      end: { status: "committed", final: { link: after } },
    });
  };

  it("written without the key, or edited in a genuine trail: refused (integrity); the link is untouched", async () => {
    const id = forgedRunId();
    await writeUnsealed(trailDir, id, await forgedSwap(id));
    expect((await refused(undoWith(id), "ATOM_TRAIL_CORRUPT")).message).toMatch(/fails its integrity check/);
    const lines = await trailLines(trailDir, genuine);
    const applied = lines.find((l) => l.step === "link" && l.status === "applied")!;
    applied.before = { type: "symlink", target: "/etc/shadow" };
    await writeLines(trailDir, genuine, lines);
    expect((await refused(undoWith(genuine), "ATOM_TRAIL_CORRUPT")).message).toMatch(
      /fails its integrity check/,
    );
    expect(await readlink(join(deploy, "current"))).toBe("releases/1");
    await untouched();
  });

  it("sealed: a state symlink.swap could not have observed, a link outside the roots, a step the deploy file does not build: refused", async () => {
    const bad = [
      { type: "symlink", target: "/etc/shadow\0" },
      { type: "symlink", target: "/etc/shadow", follow: true },
      { type: "hardlink", target: "/etc/shadow" },
    ];
    for (const before of bad) {
      const id = forgedRunId();
      await appendSealed(trail(), id, await forgedSwap(id, { before }));
      const e = await refused(undoWith(id));
      expect(e.message).toMatch(/the recorded before-state of step "link" is not a symlink.swap state/);
    }
    const outside = forgedRunId();
    await appendSealed(
      trail(),
      outside,
      await forgedSwap(outside, {
        params: (p) => {
          p.link = join(sibling, "current");
        },
      }),
    );
    expect((await refused(undoWith(outside, { roots: [deploy] }))).message).toMatch(
      /outside the allowed roots/,
    );
    // well-formed, the very params the deploy file builds, sealed: only the state was forged. The
    // undo would point the link outside the roots: refused (kinds name their states' paths in owns)
    const outsideTarget = forgedRunId();
    await appendSealed(trail(), outsideTarget, await forgedSwap(outsideTarget));
    expect((await refused(undoWith(outsideTarget, { roots: [deploy], atom: release(1) }))).message).toMatch(
      /would change paths outside the allowed roots[\s\S]*\/etc\/shadow/,
    );
    const other = forgedRunId();
    await appendSealed(
      trail(),
      other,
      await forgedSwap(other, {
        params: (p) => {
          p.target = "releases/9";
        },
      }),
    );
    expect((await refused(undoWith(other, { atom: release(1) }))).message).toMatch(
      /step "link" differs from the one the run recorded/,
    );
    expect(await readlink(join(deploy, "current"))).toBe("releases/1");
    await untouched();
  });
});

describe("(d) params the kind's own validator refuses", () => {
  it("a relative path or an unknown param in a sealed record: refused before anything runs", async () => {
    const edits: Array<[string, Record<string, unknown>, RegExp]> = [
      ["unpack", { path: "releases/2" }, /path/],
      ["unpack", { postExtract: ["sh", "-c", `id > ${proof}`] }, /postExtract/],
      ["link", { link: "current" }, /link/],
      ["link", { force: true }, /force/],
    ];
    for (const [name, edit, field] of edits) {
      const id = forgedRunId();
      const info = await genuineStep(name);
      Object.assign(info.params as Record<string, unknown>, edit);
      await appendSealed(
        trail(),
        id,
        runRecords(id, {
          steps: [info as never],
          records: [{ step: name, status: "applying", before: { type: "missing" } }],
        }),
      );
      const e = await refused(recoverWith(id));
      expect(e.message).toMatch(new RegExp(`the recorded params of step "${name}" are refused by its kind`));
      expect(e.message).toMatch(field);
    }
    await untouched();
  });
});

describe("trail files moved, spliced or cut", () => {
  it("a sealed trail file copied to another run id: refused and listed as corrupt", async () => {
    const copy = forgedRunId();
    await writeLines(trailDir, copy, await trailLines(trailDir, genuine));
    const e = await refused(undoWith(copy), "ATOM_TRAIL_CORRUPT");
    expect(e.message).toMatch(new RegExp(`records for run ${copy} cannot be read as that run`));
    expect((await trail().listRuns()).find((r) => r.runId === copy)).toMatchObject({
      status: "corrupt",
      problem: expect.stringMatching(/copied or renamed from another run/),
    });
    expect(await recover(trail(), { host, steps: kinds })).toEqual([]);
    await untouched();
  });

  it("a record spliced in from another sealed run: refused (integrity)", async () => {
    const other = forgedRunId();
    await appendSealed(
      trail(),
      other,
      runRecords(other, {
        steps: [(await genuineStep("link")) as never],
        records: [{ step: "link", status: "applying", before: { type: "missing" } }],
      }),
    );
    const spliced = (await trailLines(trailDir, other))[1]!;
    spliced.runId = genuine;
    const lines = await trailLines(trailDir, genuine);
    lines.splice(lines.length - 1, 0, spliced);
    await writeLines(trailDir, genuine, lines);
    expect((await refused(undoWith(genuine), "ATOM_TRAIL_CORRUPT")).message).toMatch(
      new RegExp(`trail record ${lines.length - 1} of run ${genuine} fails its integrity check`),
    );
    await untouched();
  });

  it("a trail sealed with another project's key: refused (integrity)", async () => {
    const id = forgedRunId();
    const other = fileTrail({ dir: trailDir, key: randomBytes(32) });
    await appendSealed(
      other,
      id,
      runRecords(id, {
        steps: [(await genuineStep("unpack")) as never],
        records: [{ step: "unpack", status: "applying", before: { type: "missing" } }],
      }),
    );
    expect((await refused(recoverWith(id), "ATOM_TRAIL_CORRUPT")).message).toMatch(
      /fails its integrity check/,
    );
    await untouched();
  });

  it("a chain cut before its end record: the run looks unfinished, and recover keeps the complete run committed", async () => {
    const lines = await trailLines(trailDir, genuine);
    await writeLines(trailDir, genuine, lines.slice(0, -1));
    const [r] = await recoverWith(genuine);
    expect(r).toMatchObject({ found: "died-before-commit", status: "committed" });
    await untouched();
  });
});

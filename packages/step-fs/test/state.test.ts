// What recover and `undo <runId>` read back is evidence: every kind re-validates a recorded state
// (`state`), names the paths it changes (`owns`) and removes only its own leftovers (`cleanup`).
import { mkdir, readdir, readFile, symlink, writeFile as writeLocal } from "node:fs/promises";
import { join } from "node:path";
import { type AnyStepKind, atom, run, type StepContext, validateParams } from "@atomkit/core";
import { ParamsFieldError } from "@atomkit/core/kit";
import { hashTree } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  makeDir,
  pruneReleases,
  type RemoveState,
  removePath,
  steps,
  untar,
  uploadFile,
  writeFile,
} from "../src/index";
import { bound, ctxOf, type Sandbox, sandbox } from "./_helpers";
import { rawTar } from "./_tar";

const HEX = "ab".repeat(32);
const checkOf = (kind: AnyStepKind) => kind.definition.state as (input: unknown) => unknown;

/** A kind's params as `run` validates them. */
async function paramsOf(kind: AnyStepKind, input: object): Promise<unknown> {
  const v = await validateParams(kind(input));
  if (v.issues) throw new Error(JSON.stringify(v.issues));
  return v.value;
}

describe("state: a recorded state is checked by its kind", () => {
  let s: Sandbox;
  beforeEach(async () => {
    s = await sandbox();
    await mkdir(join(s.app, "releases"), { recursive: true });
  });
  afterEach(() => s.cleanup());

  it("every kind of the package has state, owns, and cleanup where it makes temporary names", () => {
    for (const kind of steps) {
      expect(typeof kind.definition.state, kind.kind).toBe("function");
      expect(typeof kind.definition.owns, kind.kind).toBe("function");
    }
    const withCleanup = steps.filter((k) => k.definition.cleanup).map((k) => k.kind);
    expect(withCleanup.sort()).toEqual(["fs.untar", "fs.upload", "fs.write"]);
  });

  it("accepts, unchanged, every state a real run recorded", async () => {
    const archive = join(s.root, "r.tar");
    await writeLocal(archive, rawTar([{ path: "f", body: "x" }]));
    await writeLocal(join(s.root, "src.bin"), "bytes");
    await writeLocal(join(s.app, "old"), "old");
    await symlink("old", join(s.app, "link"));
    for (const r of ["1", "2", "3"]) await mkdir(join(s.app, "releases", r));
    const r = await run(
      atom("all", {
        steps: [
          makeDir({ path: join(s.app, "a", "b") }),
          writeFile({ path: join(s.app, "a", "b", "c.conf"), content: "c" }),
          writeFile({ path: join(s.app, "old"), content: "new" }, { name: "rewrite" }),
          uploadFile({ source: join(s.root, "src.bin"), path: join(s.app, "up.bin") }),
          untar({ archive, path: join(s.app, "releases", "4") }),
          removePath({ path: join(s.app, "link") }),
          removePath({ path: join(s.app, "a", "b", "c.conf") }, { name: "remove file" }),
          pruneReleases({ dir: join(s.app, "releases"), keep: 2 }),
        ],
      }),
      { host: s.host, lock: false },
    );
    expect(r.status).toBe("committed");
    for (const rec of r.steps) {
      const check = checkOf(steps.find((k) => k.kind === rec.kind)!);
      for (const state of [rec.before, rec.after]) {
        const json = JSON.parse(JSON.stringify(state));
        expect(check(json), `${rec.name}: ${JSON.stringify(json)}`).toEqual(json);
      }
    }
  });

  const forged: Array<[AnyStepKind, unknown, string]> = [
    [writeFile, null, ""],
    [writeFile, [], ""],
    [writeFile, { type: "fifo" }, "type"],
    [writeFile, { type: "file", sha256: "../../etc/passwd", mode: 0o644 }, "sha256"],
    [writeFile, { type: "file", sha256: HEX.toUpperCase(), mode: 0o644 }, "sha256"],
    [writeFile, { type: "file", sha256: HEX }, "mode"],
    [writeFile, { type: "file", sha256: HEX, mode: "0644" }, "mode"],
    [writeFile, { type: "file", sha256: HEX, mode: 0o10000 }, "mode"],
    [writeFile, { type: "file", sha256: HEX, mode: 0o644, owner: 0 }, "owner"],
    [writeFile, { type: "missing", sha256: HEX }, "sha256"],
    [uploadFile, { type: "file", sha256: 42, mode: 0o644 }, "sha256"],
    [uploadFile, { type: "directory", mode: 0o755 }, "mode"],
    [untar, { type: "directory", archive: "not-a-digest" }, "archive"],
    [untar, { type: "directory" }, "archive"],
    [untar, { type: "missing", archive: null }, "archive"],
    [untar, { type: "directory", archive: HEX, inode: 12 }, "inode"],
    [makeDir, { type: "missing", missing: [] }, "missing"],
    [makeDir, { type: "missing", missing: "/srv" }, "missing"],
    [makeDir, { type: "missing", missing: ["srv/app"] }, "missing.0"],
    [makeDir, { type: "missing", missing: ["/srv/../etc"] }, "missing.0"],
    [makeDir, { type: "missing", missing: ["/srv/app/"] }, "missing.0"],
    [makeDir, { type: "missing", missing: ["/srv", "/etc/x"] }, "missing.1"],
    [makeDir, { type: "directory", mode: -1 }, "mode"],
    [removePath, { type: "missing", trash: "trash/x" }, "trash"],
    [removePath, { type: "missing", trash: "/state/trash/../../etc/shadow" }, "trash"],
    [removePath, { type: "missing" }, "trash"],
    [removePath, { type: "file", size: 1.5, mode: 0o644 }, "size"],
    [removePath, { type: "file", size: 1, mode: 0o644, mtimeMs: 5 }, "mtimeMs"],
    [removePath, { type: "symlink", target: "" }, "target"],
    [removePath, { type: "directory", mode: 0o755, size: 4096 }, "size"],
    [pruneReleases, { releases: ["../etc"], pruned: {} }, "releases.0"],
    [pruneReleases, { releases: ["1", "1"], pruned: {} }, "releases"],
    [pruneReleases, { releases: [], pruned: { 1: "relative/1" } }, "pruned.1"],
    [pruneReleases, { releases: [], pruned: { "a/b": "/t/x" } }, "pruned.a/b"],
    [pruneReleases, { releases: [] }, "pruned"],
    [pruneReleases, { releases: [], pruned: {}, extra: 1 }, "extra"],
  ];
  for (const [kind, input, field] of forged) {
    it(`${kind.kind} refuses the forged state ${JSON.stringify(input)}, naming "${field}"`, () => {
      let thrown: unknown;
      try {
        checkOf(kind)(input);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ParamsFieldError);
      expect((thrown as ParamsFieldError).path).toBe(field);
    });
  }

  it("owns names the absolute paths each step changes", async () => {
    const owns = async (kind: AnyStepKind, input: object) =>
      kind.definition.owns!(await paramsOf(kind, input));
    await writeLocal(join(s.root, "src.bin"), "x");
    await writeLocal(join(s.root, "r.tar"), rawTar([{ path: "f" }]));
    expect(await owns(writeFile, { path: "/srv/app/.env", content: "x" })).toEqual(["/srv/app/.env"]);
    expect(await owns(uploadFile, { source: join(s.root, "src.bin"), path: "/srv/x" })).toEqual(["/srv/x"]);
    expect(await owns(untar, { archive: join(s.root, "r.tar"), path: "/srv/r/1/" })).toEqual(["/srv/r/1"]);
    expect(await owns(makeDir, { path: "/srv/a/./b" })).toEqual(["/srv/a/b"]);
    expect(await owns(removePath, { path: "/srv/old", trash: "/srv/.trash" })).toEqual([
      "/srv/old",
      "/srv/.trash",
    ]);
    expect(await owns(pruneReleases, { dir: "/srv/r", keep: 2 })).toEqual(["/srv/r"]);
  });
});

describe("undo trusts no path a forged state names", () => {
  let s: Sandbox;
  beforeEach(async () => {
    s = await sandbox();
    await mkdir(join(s.app, "releases"), { recursive: true });
    await mkdir(join(s.root, "victim"));
    await writeLocal(join(s.root, "victim", "secret"), "keep me");
  });
  afterEach(() => s.cleanup());

  it("fs.remove moves nothing back from outside the trash", async () => {
    const path = join(s.app, "gone");
    const st = await bound<RemoveState>(removePath, s.host, { path });
    const forged: RemoveState = { type: "missing", trash: join(s.root, "victim", "secret") };
    await expect(st.undo({ type: "file", size: 7, mode: 0o644 }, forged)).rejects.toThrow(
      /not inside the trash/,
    );
    expect(await readFile(join(s.root, "victim", "secret"), "utf8")).toBe("keep me");
  });

  it("fs.prune moves nothing back from outside the trash", async () => {
    const dir = join(s.app, "releases");
    const st = await bound<{ releases: string[]; pruned: Record<string, string> }>(pruneReleases, s.host, {
      dir,
      keep: 1,
    });
    const after = { releases: [], pruned: { victim: join(s.root, "victim") } };
    await expect(st.undo({ releases: ["victim"], pruned: {} }, after)).rejects.toThrow(
      /not inside the trash/,
    );
    expect(await readdir(dir)).toEqual([]);
    expect(await readFile(join(s.root, "victim", "secret"), "utf8")).toBe("keep me");
  });

  it("fs.mkdir removes only its path and the path's parents", async () => {
    await mkdir(join(s.root, "empty-elsewhere"));
    const st = await bound(makeDir, s.host, { path: join(s.app, "x") });
    const forged = { type: "missing", missing: [join(s.root, "empty-elsewhere")] };
    await expect(st.undo(forged, { type: "directory", mode: 0o755 })).rejects.toThrow(/not .* nor a parent/);
    expect(await readdir(s.root)).toContain("empty-elsewhere");
  });
});

describe("cleanup: leftovers of an interrupted apply or undo, and nothing else", () => {
  let s: Sandbox;
  let ctx: StepContext;
  beforeEach(async () => {
    s = await sandbox();
    await mkdir(join(s.app, "shared"), { recursive: true });
    ctx = ctxOf(s.host);
  });
  afterEach(() => s.cleanup());

  const cleanup = async (kind: AnyStepKind, input: object) =>
    kind.definition.cleanup!(ctx, await paramsOf(kind, input));

  for (const kind of [writeFile, uploadFile] as AnyStepKind[]) {
    it(`${kind.kind}: removes the temporary files beside the path, keeps everything else`, async () => {
      const dir = join(s.app, "shared");
      const path = join(dir, "app.env");
      await writeLocal(path, "live\n");
      await writeLocal(join(dir, ".app.env.atomkit-1a2b3c4d"), "half a write");
      await symlink("nowhere", join(dir, ".app.env.atomkit-0badf00d"));
      await mkdir(join(dir, ".app.env.atomkit-dir")); // not a temp file this kind makes: left alone
      for (const keep of [".app.env.bak", "app.env.atomkit-1", ".app.env2.atomkit-1", "other"]) {
        await writeLocal(join(dir, keep), keep);
      }
      await writeLocal(join(s.root, "src"), "x");
      const params = kind === writeFile ? { path, content: "x" } : { path, source: join(s.root, "src") };
      const st = await bound(kind, s.host, params);
      const before = await st.observe();
      await cleanup(kind, params);
      expect((await readdir(dir)).sort()).toEqual(
        [
          ".app.env.atomkit-dir",
          ".app.env.bak",
          ".app.env2.atomkit-1",
          "app.env",
          "app.env.atomkit-1",
          "other",
        ].sort(),
      );
      expect(await st.observe()).toEqual(before);
      await cleanup(kind, { ...params, path: join(s.app, "no", "such", "dir", "f") }); // nothing there: fine
    });
  }

  it("fs.untar: removes the temporary directory, upload and renamed-aside release; keeps the rest", async () => {
    const releases = join(s.app, "releases");
    await mkdir(join(releases, "2"), { recursive: true });
    await writeLocal(join(releases, "2", "VERSION"), "2");
    await mkdir(join(releases, ".3.atomkit-1a2b3c4d", "deep"), { recursive: true });
    await writeLocal(join(releases, ".3.atomkit-1a2b3c4d", "deep", "f"), "partial");
    await writeLocal(join(releases, ".3.atomkit-1a2b3c4d.tar"), "upload");
    await mkdir(join(releases, ".3.atomkit-99999999")); // an undo renamed the release aside, then died
    await mkdir(join(releases, ".2.atomkit-1a2b3c4d")); // another release's leftover: not this step's
    const archive = join(s.root, "r.tar");
    await writeLocal(archive, rawTar([{ path: "f" }]));
    const picture = await hashTree(join(releases, "2"));
    await cleanup(untar, { archive, path: join(releases, "3") });
    expect((await readdir(releases)).sort()).toEqual([".2.atomkit-1a2b3c4d", "2"]);
    expect(await hashTree(join(releases, "2"))).toBe(picture);
  });
});

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { atom, type Host, ParamsError, run } from "@atomkit/core";
import { describeStepContract, hashTree } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { inspectArchive, UnsafeArchiveError, type UntarState, untar } from "../src/index";
import { asRemote, bound, flaky, HOSTILE_STRINGS, type Sandbox, sandbox, segmentSafe } from "./_helpers";
import { type RawEntry, rawTar } from "./_tar";

/** A small release: nested dirs, an executable, internal symlinks (file and dir), a hard link. */
const RELEASE: RawEntry[] = [
  { path: "./", type: "Directory", globalPax: { comment: "3f9a1c0d (git archive puts the commit here)" } },
  { path: "bin/", type: "Directory" },
  { path: "bin/start", body: "#!/bin/sh\necho start\n", mode: 0o755 },
  { path: "config/", type: "Directory" },
  { path: "config/app.yml", body: "port: 8080\n" },
  { path: "lib/", type: "Directory" },
  { path: "lib/tools", type: "SymbolicLink", linkpath: "../bin" },
  { path: "app.yml", type: "SymbolicLink", linkpath: "config/app.yml" },
  { path: "config/hard.yml", type: "Link", linkpath: "config/app.yml" },
  { path: "VERSION", body: "2\n" },
];

async function releaseFixture(s: Sandbox, entries = RELEASE) {
  await mkdir(join(s.app, "releases", "1"), { recursive: true });
  await writeFile(join(s.app, "releases", "1", "VERSION"), "1\n");
  await mkdir(join(s.root, "artifacts"));
  const archive = join(s.root, "artifacts", "release 2.tar.gz");
  await writeFile(archive, rawTar(entries, { gzip: true }));
  return { archive, path: join(s.app, "releases", "2") };
}

for (const mode of ["local", "remote"] as const) {
  const hostFor = (h: Host) => (mode === "remote" ? asRemote(h) : h);

  describeStepContract({
    name: `fs.untar (${mode === "local" ? "local host: node-tar" : "remote path: upload + tar on the host"})`,
    idempotent: true,
    breakApplyLeaves: "unchanged",
    async setup() {
      const s = await sandbox();
      const { archive, path } = await releaseFixture(s);
      // the final rename fails: the temporary directory must be cleaned up, the parent left as it was
      const f = flaky(hostFor(s.host), "rename", "before");
      return {
        host: f.host,
        step: () => untar({ archive, path }),
        snapshot: () => hashTree(s.app),
        breakApply: f.arm,
        cleanup: s.cleanup,
      };
    },
    additionalTests: (fx) => {
      it("extracts the exact tree: modes, symlinks, hard link, marker", async () => {
        const { host } = fx();
        const s = await bound<UntarState>(untar, host, fx().step().params as object);
        const before = await s.observe();
        await s.apply(before);
        const after = await s.observe();
        const dir = (s.params as { path: string }).path;
        expect(after).toMatchObject({ type: "directory", archive: expect.stringMatching(/^[0-9a-f]{64}$/) });
        expect(await readFile(join(dir, "bin", "start"), "utf8")).toContain("echo start");
        expect((await lstat(join(dir, "bin", "start"))).mode & 0o777).toBe(0o755);
        expect(await readlink(join(dir, "lib", "tools"))).toBe("../bin");
        expect(await readFile(join(dir, "app.yml"), "utf8")).toBe("port: 8080\n");
        expect((await lstat(join(dir, "config", "hard.yml"))).ino).toBe(
          (await lstat(join(dir, "config", "app.yml"))).ino,
        );
        const marker = JSON.parse(await readFile(join(dir, ".atomkit-release"), "utf8"));
        expect(marker).toMatchObject({
          sha256: (after as { archive: string }).archive,
          entries: RELEASE.length,
        });
        // nothing else appeared beside the release (no temporary dirs or uploads left)
        expect((await readdir(join(dir, ".."))).sort()).toEqual(["1", "2"]);
        await s.undo(before, after);
      });
    },
  });

  describe(`fs.untar hostile archives (${mode})`, () => {
    let s: Sandbox;
    beforeEach(async () => {
      s = await sandbox();
      await mkdir(join(s.app, "releases", "1"), { recursive: true });
      await writeFile(join(s.app, "releases", "1", "VERSION"), "1\n");
      await mkdir(join(s.root, "artifacts"));
      await mkdir(join(s.root, "etc"));
      await writeFile(join(s.root, "etc", "passwd"), "root:x:0:0\n");
    });
    afterEach(() => s.cleanup());

    const corpus: Array<[string, RawEntry[] | Buffer, RegExp]> = [
      ["traversal", [{ path: "../../etc/evil", body: "x" }], /has a "\.\." component/],
      ["traversal in the middle", [{ path: "a/b/../../../evil", body: "x" }], /has a "\.\." component/],
      [
        "traversal hidden in a pax header",
        [{ path: "../../evil", paxPath: "harmless", body: "x" }],
        /"\.\." component/,
      ],
      [
        "traversal hidden in a GNU long name",
        [{ path: "../../evil", gnuLongPath: "harmless", body: "x" }],
        /"\.\." component/,
      ],
      ["absolute path", [{ path: "/tmp/atomkit-evil", body: "x" }], /is absolute/],
      [
        "a global pax header renaming the entries after it (GNU tar applies it)",
        [{ path: "harmless", body: "x", globalPax: { path: "../../evil" } }],
        /global pax header sets "path"/,
      ],
      [
        "symlink escaping with ..",
        [{ path: "escape", type: "SymbolicLink", linkpath: "../../etc" }],
        /points outside the target/,
      ],
      [
        "symlink to an absolute path",
        [{ path: "escape", type: "SymbolicLink", linkpath: "/etc/passwd" }],
        /absolute path/,
      ],
      [
        "symlink escaping through another symlink",
        [
          { path: "d/", type: "Directory" },
          { path: "d/up", type: "SymbolicLink", linkpath: ".." },
          { path: "escape", type: "SymbolicLink", linkpath: "d/up/.." },
        ],
        /points outside the target/,
      ],
      [
        "file written through an in-archive symlink",
        [
          { path: "sub/", type: "Directory" },
          { path: "link", type: "SymbolicLink", linkpath: "sub" },
          { path: "link/evil", body: "x" },
        ],
        /written through the symlink/,
      ],
      [
        "symlink then file of the same name (swap attack)",
        [
          { path: "x", type: "SymbolicLink", linkpath: "sub" },
          { path: "x", body: "x" },
        ],
        /appears twice/,
      ],
      ["hard link escaping", [{ path: "h", type: "Link", linkpath: "../../etc/passwd" }], /"\.\." component/],
      [
        "hard link to an absolute path",
        [{ path: "h", type: "Link", linkpath: "/etc/passwd" }],
        /is absolute/,
      ],
      [
        "hard link to nothing in the archive",
        [{ path: "h", type: "Link", linkpath: "etc/passwd" }],
        /not a file earlier/,
      ],
      ["character device", [{ path: "null", type: "CharacterDevice" }], /CharacterDevice/],
      ["block device", [{ path: "sda", type: "BlockDevice" }], /BlockDevice/],
      ["fifo", [{ path: "pipe", type: "FIFO" }], /FIFO/],
      ["setuid file", [{ path: "su", body: "x", mode: 0o4755 }], /setuid/],
      [
        "size bomb (gzip of zeros over the limit)",
        [{ path: "zeros", body: Buffer.alloc(3 * 1024 * 1024) }],
        /more than 1048576 bytes/,
      ],
      [
        "lying header (huge declared size)",
        [{ path: "big", size: 8 * 1024 ** 3 }],
        /more than 1048576 bytes/,
      ],
      [
        "entry-count bomb",
        Array.from({ length: 300 }, (_, i) => ({ path: `f${i}` })),
        /more than 200 entries/,
      ],
      ["not a tar at all", Buffer.from("<html>404 not found</html>".repeat(30)), /cannot be read/],
      [
        "a corrupt gzip stream",
        Buffer.concat([
          Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]),
          Buffer.from("garbage".repeat(100)),
        ]),
        /cannot be read/,
      ],
      [
        "truncated archive",
        rawTar([{ path: "big", body: Buffer.alloc(5000, 1) }]).subarray(0, 2048),
        /Truncated/,
      ],
      ["empty archive", Buffer.alloc(1024), /cannot be read|no entries/],
      ["bzip2 data", Buffer.concat([Buffer.from("BZh91AY&SY"), Buffer.alloc(600)]), /bzip2-compressed/],
    ];

    for (const [name, content, message] of corpus) {
      it(`refuses ${name}, writing nothing`, async () => {
        const archive = join(s.root, "artifacts", "evil.tar.gz");
        await writeFile(archive, Buffer.isBuffer(content) ? content : rawTar(content, { gzip: true }));
        const picture = await hashTree(s.root);
        const result = await run(
          atom("hostile", {
            steps: [
              untar({
                archive,
                path: join(s.app, "releases", "2"),
                limits: { maxBytes: 1024 * 1024, maxEntries: 200 },
              }),
            ],
          }),
          { host: mode === "remote" ? asRemote(s.host) : s.host, lock: false },
        );
        expect(result.status).toBe("rolled-back");
        expect(result.steps[0]?.status).toBe("failed-unchanged");
        expect(result.error?.message).toMatch(message);
        expect(result.error?.message).toContain("nothing was extracted");
        expect(result.error?.hint).toBeTruthy();
        expect(result.error).toBeInstanceOf(UnsafeArchiveError);
        expect(await hashTree(s.root)).toBe(picture);
        expect(existsSync("/tmp/atomkit-evil")).toBe(false);
      });
    }
  });

  describe(`fs.untar literal names and real archives (${mode})`, () => {
    let s: Sandbox;
    beforeEach(async () => {
      s = await sandbox();
      await mkdir(join(s.app, "releases"), { recursive: true });
    });
    afterEach(() => s.cleanup());
    const host = () => (mode === "remote" ? asRemote(s.host) : s.host);

    it("extracts names with spaces, quotes, newlines and $(...) literally, into a hostile target name", async () => {
      const names = HOSTILE_STRINGS.filter(segmentSafe).filter((n) => n !== "--" && !n.startsWith("-"));
      const entries: RawEntry[] = names.flatMap((n, i) => [
        { path: `d${i} ${n}/`, type: "Directory" as const },
        { path: `d${i} ${n}/${n}`, body: n },
        { path: `l${i} ${n}`, type: "SymbolicLink" as const, linkpath: `d${i} ${n}/${n}` },
      ]);
      const archive = join(s.root, 'it\'s $(a) "release"\n.tar');
      await writeFile(archive, rawTar(entries));
      const path = join(s.app, "releases", "r $(touch atomkit-pwned) 'q' \"dq\"\nnl `id`");
      const st = await bound<UntarState>(untar, host(), { archive, path });
      const before = await st.observe();
      await st.apply(before);
      for (const [i, n] of names.entries()) {
        expect(await readFile(join(path, `d${i} ${n}`, n), "utf8")).toBe(n);
        expect(await readlink(join(path, `l${i} ${n}`))).toBe(`d${i} ${n}/${n}`);
      }
      expect(existsSync("/tmp/atomkit-pwned")).toBe(false);
      await st.undo(before, await st.observe());
      expect(await readdir(join(s.app, "releases"))).toEqual([]);
    });

    it("extracts what GNU tar made (pax headers, long names), with strip", async () => {
      const src = join(s.root, "src", "app-1.2");
      const long = "n".repeat(150);
      await mkdir(join(src, "deep", long), { recursive: true });
      await writeFile(join(src, "deep", long, "file ünïcödé"), "deep");
      await writeFile(join(src, "run.sh"), "#!/bin/sh\n", { mode: 0o750 });
      const archive = join(s.root, "app.tar.gz");
      execFileSync("tar", ["-czf", archive, "--format=pax", "-C", join(s.root, "src"), "app-1.2"]);
      const path = join(s.app, "releases", "1.2");
      const st = await bound<UntarState>(untar, host(), { archive, path, strip: 1 });
      await st.apply(await st.observe());
      expect(await readFile(join(path, "deep", long, "file ünïcödé"), "utf8")).toBe("deep");
      expect((await lstat(join(path, "run.sh"))).mode & 0o777).toBe(0o750);
      const summary = await inspectArchive(archive, { strip: 1 });
      expect(await st.observe()).toEqual({ type: "directory", archive: summary.sha256 });
    });

    it(`extractWith: "tar" uses the host's tar; "node-tar" is refused on a remote host`, async () => {
      const archive = join(s.root, "r.tar");
      await writeFile(archive, rawTar([{ path: "f", body: "x" }]));
      const path = join(s.app, "releases", "r");
      const withTar = await run(atom("tar", { steps: [untar({ archive, path, extractWith: "tar" })] }), {
        host: host(),
        lock: false,
      });
      expect(withTar.status).toBe("committed");
      expect(await readFile(join(path, "f"), "utf8")).toBe("x");
      const other = join(s.app, "releases", "r2");
      const r = await run(atom("nt", { steps: [untar({ archive, path: other, extractWith: "node-tar" })] }), {
        host: host(),
        lock: false,
      });
      expect(r.status).toBe(mode === "local" ? "committed" : "rolled-back");
      if (mode === "remote") expect(r.error?.message).toContain("node-tar can only extract");
    });

    it("refuses a target that exists, and a missing parent, before extracting", async () => {
      const archive = join(s.root, "r.tar");
      await writeFile(archive, rawTar([{ path: "f", body: "x" }]));
      await mkdir(join(s.app, "releases", "taken"));
      const picture = await hashTree(s.root);
      for (const [path, text] of [
        [join(s.app, "releases", "taken"), "already exists"],
        [join(s.app, "nope", "r1"), "parent directory"],
      ] as const) {
        const r = await run(atom("refused", { steps: [untar({ archive, path })] }), {
          host: host(),
          lock: false,
        });
        expect(r.status).toBe("rolled-back");
        expect(r.steps[0]?.status).toBe("failed-unchanged");
        expect(r.error?.message).toContain(text);
        expect(await hashTree(s.root)).toBe(picture);
      }
    });
  });
}

describe("fs.untar params", () => {
  let s: Sandbox;
  beforeEach(async () => {
    s = await sandbox();
  });
  afterEach(() => s.cleanup());

  it("refuses bad params before anything runs, naming the field", async () => {
    const archive = join(s.root, "r.tar");
    await writeFile(archive, rawTar([{ path: "f", body: "x" }]));
    const cases: Array<[unknown, string]> = [
      [{ archive: join(s.root, "missing.tar"), path: "/srv/r" }, "archive"],
      [{ archive: s.root, path: "/srv/r" }, "archive"],
      [{ archive, path: "releases/1" }, "path"],
      [{ archive, path: "/srv/r", strip: -1 }, "strip"],
      [{ archive, path: "/srv/r", limits: { maxBytes: 0 } }, "limits.maxBytes"],
      [{ archive, path: "/srv/r", limits: { maxFiles: 3 } }, "maxFiles"],
      [{ archive, path: "/srv/r", extra: true }, "extra"],
      [{ archive, path: "/srv/r", extractWith: "bsdtar" }, "extractWith"],
    ];
    const picture = await hashTree(s.root);
    for (const [params, field] of cases) {
      const attempt = run(atom("bad", { steps: [untar(params as never)] }), { host: s.host, lock: false });
      await expect(attempt).rejects.toBeInstanceOf(ParamsError);
      await expect(attempt).rejects.toMatchObject({ issues: [{ path: field }] });
    }
    expect(await hashTree(s.root)).toBe(picture);
  });
});

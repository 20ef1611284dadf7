import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { atom, type Host, ParamsError, run } from "@atomkit/core";
import { describeStepContract, hashTree } from "@atomkit/testkit";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SshHost } from "../../step-ssh/src/index";
import { memory } from "../src/_inspected";
import { inspectArchive, UnsafeArchiveError, type UntarState, untar } from "../src/index";
import { asRemote, bound, flaky, HOSTILE_STRINGS, type Sandbox, sandbox, segmentSafe } from "./_helpers";
import { noSshd, overSsh, testSshHost } from "./_ssh";
import { type RawEntry, rawTar } from "./_tar";

/** local: node-tar; remote: this machine taking the remote path (host's tar via exec); ssh: a real sshd. */
type Mode = "local" | "remote" | "ssh";
const MODES: Mode[] = ["local", "remote", ...(noSshd ? [] : (["ssh"] as const))];
/**
 * Where extraction takes the archive from: the inspected bytes held in memory (streamed into the host's
 * tar), or the file again, as for an archive over memory.perArchive (uploaded, digest checked).
 */
const STORES = ["memory", "file"] as const;

let ssh: SshHost | undefined;
afterAll(() => ssh?.close());
function hostIn(mode: Mode, local: Host): Host {
  if (mode === "local") return local;
  if (mode === "remote") return asRemote(local);
  ssh ??= testSshHost();
  return overSsh(ssh, local);
}
function withStore(store: (typeof STORES)[number]) {
  const saved = memory.perArchive;
  beforeAll(() => {
    memory.perArchive = store === "file" ? 0 : saved;
  });
  afterAll(() => {
    memory.perArchive = saved;
  });
}

const here = fileURLToPath(new URL(".", import.meta.url));

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

for (const mode of MODES)
  for (const store of STORES)
    describe(`fs.untar on a ${mode} host, archive from ${store}`, () => {
      withStore(store);
      const hostFor = (h: Host) => hostIn(mode, h);

      describeStepContract({
        name: `fs.untar (${mode === "local" ? "local host: node-tar" : `${mode} host: the host's tar`}, ${store})`,
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
            expect(after).toMatchObject({
              type: "directory",
              archive: expect.stringMatching(/^[0-9a-f]{64}$/),
            });
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

        const deep = (levels: number): RawEntry[] =>
          Array.from({ length: levels }, (_, i) => ({
            path: `${"d/".repeat(i + 1)}`,
            type: "Directory" as const,
          }));
        const corpus: Array<[string, RawEntry[] | Buffer, RegExp, { strip?: number }?]> = [
          [
            '"." as a symlink out of the directory',
            [
              { path: ".", type: "SymbolicLink", linkpath: ".." },
              { path: "f", body: "x" },
            ],
            /entry "\." would replace the target directory/,
          ],
          [
            '"./." as a symlink out of the directory',
            [{ path: "./.", type: "SymbolicLink", linkpath: "../../etc" }],
            /would replace the target directory/,
          ],
          [
            '"." as a symlink to a directory inside the archive',
            [
              { path: "sub/", type: "Directory" },
              { path: ".", type: "SymbolicLink", linkpath: "sub" },
            ],
            /would replace the target directory/,
          ],
          ['"." as a file', [{ path: ".", body: "x" }], /would replace the target directory/],
          [
            '"a/." as a symlink once "a" is stripped',
            [{ path: "a/.", type: "SymbolicLink", linkpath: "../.." }],
            /would replace the target directory/,
            { strip: 1 },
          ],
          [
            'a symlink "./x" that strip makes "x" (tar counts "." as a component)',
            [{ path: "./x", type: "SymbolicLink", linkpath: "../../etc" }],
            /points outside the target/,
            { strip: 1 },
          ],
          [
            "a file written through a symlink, both under a stripped ./",
            [
              { path: "./sub/", type: "Directory" },
              { path: "./s", type: "SymbolicLink", linkpath: "sub" },
              { path: "./s/evil", body: "x" },
            ],
            /written through the symlink "s"/,
            { strip: 1 },
          ],
          [
            "a hard link whose path lies under a symlink",
            [
              { path: "sub/", type: "Directory" },
              { path: "f", body: "x" },
              { path: "s", type: "SymbolicLink", linkpath: "sub" },
              { path: "s/h", type: "Link", linkpath: "f" },
            ],
            /written through the symlink "s"/,
          ],
          ["an empty path component", [{ path: "a//b", body: "x" }], /empty path component/],
          ["400 levels of directories", deep(400), /deeper than 64 path components/],
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
          [
            "hard link escaping",
            [{ path: "h", type: "Link", linkpath: "../../etc/passwd" }],
            /"\.\." component/,
          ],
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
            Array.from({ length: 600 }, (_, i) => ({ path: `f${i}` })),
            /more than 500 entries/,
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

        for (const [name, content, message, extra] of corpus) {
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
                    limits: { maxBytes: 1024 * 1024, maxEntries: 500 },
                    ...extra,
                  }),
                ],
              }),
              { host: hostIn(mode, s.host), lock: false },
            );
            expect(result.status).toBe("rolled-back");
            expect(result.steps[0]?.status).toBe("failed-unchanged");
            expect(result.error?.message).toMatch(message);
            expect(result.error?.message).toContain("nothing was extracted");
            expect(result.error?.hint).toBeTruthy();
            // the engine gives every step failure one shape; the kind's own error is its cause
            expect(result.error?.cause).toBeInstanceOf(UnsafeArchiveError);
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
        const host = () => hostIn(mode, s.host);

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
          const r = await run(
            atom("nt", { steps: [untar({ archive, path: other, extractWith: "node-tar" })] }),
            {
              host: host(),
              lock: false,
            },
          );
          expect(r.status).toBe(mode === "local" ? "committed" : "rolled-back");
          if (mode !== "local") expect(r.error?.message).toContain("node-tar can only extract");
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
    });

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
      [{ archive, path: "/srv/r", limits: { maxFiles: 3 } }, "limits.maxFiles"],
      [{ archive, path: "/srv/r", extra: true }, "extra"],
      [{ archive, path: "/srv/r", extractWith: "bsdtar" }, "extractWith"],
      [{ archive, path: "/srv/r", limits: { maxDepth: 0 } }, "limits.maxDepth"],
      [{ archive, path: "/srv/r", limits: { maxDepth: 5000 } }, "limits.maxDepth"],
      [{ archive, path: "/srv/r", limits: { maxMs: 0 } }, "limits.maxMs"],
      [{ archive, path: "/srv/r", limits: { maxMs: "10m" } }, "limits.maxMs"],
      [{ archive, path: "/srv/r", limits: { maxMs: 2 ** 40 } }, "limits.maxMs"],
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

describe("fs.untar: whatever node-tar, tar or gzip raise becomes the step's error", () => {
  let s: Sandbox;
  beforeEach(async () => {
    s = await sandbox();
    await mkdir(join(s.app, "releases", "1"), { recursive: true });
  });
  afterEach(() => s.cleanup());

  // many entries after the bad one, gzipped: node-tar reports it while more input is still being read
  const tail: RawEntry[] = Array.from({ length: 3000 }, (_, i) => ({ path: `f${i}`, body: `${i}` }));
  const cases: Array<[string, RawEntry[], "local" | "remote"]> = [
    [
      '"." as a symlink out of the directory',
      [{ path: ".", type: "SymbolicLink", linkpath: ".." }, ...tail],
      "local",
    ],
    [
      '"." as a symlink out of the directory',
      [{ path: ".", type: "SymbolicLink", linkpath: ".." }, ...tail],
      "remote",
    ],
    // passes inspection (a name is not unsafe for being long); the filesystem refuses it mid-extraction
    [
      "a name too long for the filesystem",
      [...tail.slice(0, 5), { path: "n".repeat(300), paxPath: "n", body: "x" }, ...tail],
      "local",
    ],
    [
      "a name too long for the filesystem",
      [...tail.slice(0, 5), { path: "n".repeat(300), paxPath: "n", body: "x" }, ...tail],
      "remote",
    ],
  ];
  for (const [name, entries, mode] of cases) {
    it(`${name} (${mode}): the process survives, the run rolls back, no temporary directory is left`, async () => {
      const archive = join(s.root, "bad.tar.gz");
      await writeFile(archive, rawTar(entries, { gzip: true }));
      const path = join(s.app, "releases", "2");
      const child = spawn(
        process.execPath,
        [join(here, "fixtures", "untar-child.mjs"), archive, path, join(s.root, "state"), mode],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => (out += d));
      child.stderr.on("data", (d: Buffer) => (err += d));
      const [code] = await once(child, "close");
      expect({ code, err: err.slice(0, 2000) }).toEqual({ code: 0, err: "" });
      const r = JSON.parse(out);
      expect(r.status).toBe("rolled-back");
      expect(r.step).toBe("failed-unchanged");
      expect(r.error).toMatchObject({ code: "ATOM_STEP_FAILED", hint: expect.any(String) });
      expect(r.error.expected).toBeTruthy();
      expect(r.error.found).toBeTruthy();
      expect(r.beside).toEqual(["1"]);
    });
  }
});

/** `base`, rewriting `archive` once the temporary directory exists: after inspection, before extraction. */
function swapping(base: Host, archive: string, bytes: () => Buffer): Host {
  return {
    ...base,
    mkdir: async (dir, o) => {
      await base.mkdir(dir, o);
      if (dir.includes(".r.atomkit-")) await writeFile(archive, bytes());
    },
  };
}

describe("fs.untar: an archive that changes between inspection and extraction", () => {
  let s: Sandbox;
  beforeEach(async () => {
    s = await sandbox();
    await mkdir(join(s.app, "releases"), { recursive: true });
  });
  afterEach(() => s.cleanup());

  const tail: RawEntry[] = Array.from({ length: 2000 }, (_, i) => ({ path: `f${i}`, body: `${i}` }));
  const swaps: Array<[string, () => Buffer]> = [
    // gunzip fails mid-stream: a stream error, not a tar one
    [
      "a gzip stream corrupt half-way",
      () => {
        const good = rawTar(tail, { gzip: true });
        return Buffer.concat([good.subarray(0, 2000), Buffer.alloc(4000, 0x55)]);
      },
    ],
    // node-tar's own refusal (TAR_ENTRY_ERROR) while more entries follow
    [
      '"." as a symlink out of the directory',
      () => rawTar([{ path: ".", type: "SymbolicLink", linkpath: ".." }, ...tail], { gzip: true }),
    ],
  ];
  for (const [name, bytes] of swaps) {
    for (const mode of MODES) {
      it(`${name} (${mode}, archive from file): the step's error, nothing kept`, async () => {
        const saved = memory.perArchive;
        memory.perArchive = 0;
        try {
          const archive = join(s.root, "r.tar.gz");
          await writeFile(archive, rawTar(tail, { gzip: true }));
          const r = await run(
            atom("swapped", { steps: [untar({ archive, path: join(s.app, "releases", "r") })] }),
            {
              host: swapping(hostIn(mode, s.host), archive, bytes),
              lock: false,
            },
          );
          expect(r.status).toBe("rolled-back");
          expect(r.steps[0]?.status).toBe("failed-unchanged");
          expect(r.steps[0]?.after ?? r.steps[0]?.before).toEqual({ type: "missing" });
          expect(r.error?.code).toBe("ATOM_STEP_FAILED");
          expect(r.error?.hint).toBeTruthy();
          expect(r.error?.found).toBeTruthy();
          expect(await readdir(join(s.app, "releases"))).toEqual([]);
        } finally {
          memory.perArchive = saved;
        }
      });

      it(`${name} (${mode}, archive in memory): the inspected bytes are extracted, not the new ones`, async () => {
        const archive = join(s.root, "r.tar.gz");
        const inspected = rawTar(tail, { gzip: true });
        await writeFile(archive, inspected);
        const path = join(s.app, "releases", "r");
        const r = await run(atom("swapped", { steps: [untar({ archive, path })] }), {
          host: swapping(hostIn(mode, s.host), archive, bytes),
          lock: false,
        });
        expect(r.status).toBe("committed");
        const sha = createHash("sha256").update(inspected).digest("hex");
        expect(r.steps[0]?.after).toEqual({ type: "directory", archive: sha });
        expect(JSON.parse(await readFile(join(path, ".atomkit-release"), "utf8")).sha256).toBe(sha);
        expect(await readFile(join(path, "f1999"), "utf8")).toBe("1999");
        expect(await readdir(join(s.app, "releases"))).toEqual(["r"]);
      });
    }
  }
});

describe("fs.untar: depth and time limits", () => {
  let s: Sandbox;
  beforeEach(async () => {
    s = await sandbox();
    await mkdir(join(s.app, "releases"), { recursive: true });
  });
  afterEach(() => s.cleanup());
  const deep = (levels: number): RawEntry[] =>
    Array.from({ length: levels }, (_, i) => ({ path: `${"d/".repeat(i + 1)}`, type: "Directory" as const }));

  it("limits.maxDepth counts components after strip and can be raised", async () => {
    const archive = join(s.root, "deep.tar");
    await writeFile(
      archive,
      rawTar([
        { path: "top/", type: "Directory" },
        ...deep(65).map((e) => ({ ...e, path: `top/${e.path}` })),
      ]),
    );
    const path = join(s.app, "releases", "r");
    const refused = await run(atom("deep", { steps: [untar({ archive, path })] }), {
      host: s.host,
      lock: false,
    });
    expect(refused.error?.message).toMatch(/deeper than 64 path components/);
    expect(refused.error?.hint).toMatch(/limits\.maxDepth/);
    const stripped = await run(atom("deep", { steps: [untar({ archive, path, strip: 1 })] }), {
      host: s.host,
      lock: false,
    });
    expect(stripped.error?.message).toMatch(/deeper than 64/); // 65 levels under top/
    const raised = await run(atom("deep", { steps: [untar({ archive, path, limits: { maxDepth: 66 } })] }), {
      host: s.host,
      lock: false,
    });
    expect(raised.status).toBe("committed");
    expect(existsSync(join(path, "top", ...Array(65).fill("d")))).toBe(true);
  });

  for (const mode of MODES)
    for (const store of STORES)
      describe(`${mode}, archive from ${store}`, () => {
        withStore(store);
        it(`limits.maxMs bounds inspection and extraction; nothing is left (${mode})`, async () => {
          // random bytes: no machine reads, hashes and inflates 8 MiB of them within 1 ms
          const archive = join(s.root, "big.tar.gz");
          await writeFile(
            archive,
            rawTar([{ path: "blob", body: randomBytes(8 * 1024 * 1024) }], { gzip: true }),
          );
          const path = join(s.app, "releases", "r");
          const host = hostIn(mode, s.host);
          const r = await run(atom("slow", { steps: [untar({ archive, path, limits: { maxMs: 1 } })] }), {
            host,
            lock: false,
          });
          expect(r.status).toBe("rolled-back");
          expect(r.steps[0]?.status).toBe("failed-unchanged");
          expect(r.error?.message).toMatch(/longer than 1 ms \(limits\.maxMs\)/);
          expect(r.error?.hint).toBeTruthy();
          expect(await readdir(join(s.app, "releases"))).toEqual([]);
        });

        it(`the step's signal stops extraction; nothing is left (${mode})`, async () => {
          const archive = join(s.root, "big.tar.gz");
          await writeFile(
            archive,
            rawTar([{ path: "blob", body: randomBytes(8 * 1024 * 1024) }], { gzip: true }),
          );
          const path = join(s.app, "releases", "r");
          const ac = new AbortController();
          const base = hostIn(mode, s.host);
          // cancel once the temporary directory exists: extraction is what gets interrupted
          const host: Host = {
            ...base,
            mkdir: async (dir, o) => {
              await base.mkdir(dir, o);
              if (dir.includes(".r.atomkit-")) ac.abort();
            },
          };
          const r = await run(atom("cancel", { steps: [untar({ archive, path })] }), {
            host,
            lock: false,
            signal: ac.signal,
          });
          expect(ac.signal.aborted).toBe(true);
          expect(r.status).toBe("rolled-back");
          expect(r.error?.code).toBe("ATOM_ABORTED");
          expect(await readdir(join(s.app, "releases"))).toEqual([]);
        });
      });
});

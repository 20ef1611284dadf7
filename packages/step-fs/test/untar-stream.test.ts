// fs.untar's inspect-once + stream path over real SSH: one inspection for a fleet, the inspected bytes
// (never the file's later ones) on every host, and a host's tar dying mid-stream leaving nothing.
import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdir, readdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { atom, type Host, run } from "@atomkit/core";
import { waitUntil } from "@atomkit/testkit";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import type { SshHost } from "../../step-ssh/src/index";
import { cacheStats, inspectionCount, inspectOnce, memory } from "../src/_inspected";
import { DEFAULT_LIMITS } from "../src/archive";
import { untar } from "../src/index";
import { type Sandbox, sandbox } from "./_helpers";
import { noSshd, overSsh, sshPorts, testSshHost } from "./_ssh";
import { rawTar } from "./_tar";

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const files = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => ({ path: `f${i}`, body: `${tag}${i}` }));
const marker = async (dir: string) =>
  JSON.parse(await readFile(join(dir, ".atomkit-release"), "utf8")).sha256;

describe.skipIf(noSshd)("fs.untar over SSH: inspect once, stream everywhere", () => {
  const fleet: SshHost[] = sshPorts.map((p) => testSshHost(p));
  afterAll(() => Promise.all(fleet.map((h) => h.close())));
  let s: Sandbox;
  beforeEach(async () => {
    s = await sandbox();
    await mkdir(join(s.app, "releases"), { recursive: true });
  });
  afterEach(() => s.cleanup());
  const untarOn = (host: Host, archive: string, path: string) =>
    run(atom("release", { steps: [untar({ archive, path })] }), { host, lock: false });

  it("a fleet started together shares one inspection; a rewritten archive is inspected again", async () => {
    const archive = join(s.root, "release.tar.gz");
    const v1 = rawTar(files(500, "v1-"), { gzip: true });
    await writeFile(archive, v1);
    const mtime = 1_700_000_000; // whole seconds, so the same mtime can be put back exactly
    await utimes(archive, mtime, mtime);
    const first = inspectionCount();
    // two releases per testbed host: 8 extractions at once over 4 connections
    const targets = [...fleet, ...fleet].map((h, i) => ({
      host: overSsh(h, s.host),
      path: join(s.app, "releases", `h${i}`),
    }));
    const results = await Promise.all(targets.map((t) => untarOn(t.host, archive, t.path)));
    expect(results.map((r) => r.status)).toEqual(targets.map(() => "committed"));
    expect(inspectionCount() - first).toBe(1);
    for (const t of targets) {
      expect(await marker(t.path)).toBe(sha256(v1));
      expect(await readFile(join(t.path, "f499"), "utf8")).toBe("v1-499");
    }
    // same size, mtime put back: the ctime still tells, so the new bytes are inspected before use
    const v2 = rawTar(files(500, "v2-"), { gzip: true });
    expect(v2.length).toBe(v1.length);
    await writeFile(archive, v2);
    await utimes(archive, mtime, mtime);
    expect((await stat(archive)).mtimeMs).toBe(mtime * 1000);
    const path = join(s.app, "releases", "v2");
    const r = await untarOn(overSsh(fleet[0] as SshHost, s.host), archive, path);
    expect(r.status).toBe("committed");
    expect(inspectionCount() - first).toBe(2);
    expect(await marker(path)).toBe(sha256(v2));
    expect(await readFile(join(path, "f499"), "utf8")).toBe("v2-499");
  });

  it("a caller that gives up does not stop the others' inspection", async () => {
    const archive = join(s.root, "r.tar.gz");
    const bytes = rawTar([{ path: "blob", body: randomBytes(32 * 1024 * 1024) }], { gzip: true });
    await writeFile(archive, bytes);
    const first = inspectionCount();
    const ac = new AbortController();
    const o = { strip: 0, limits: DEFAULT_LIMITS };
    const quitter = inspectOnce(archive, { ...o, signal: ac.signal });
    const stayer = inspectOnce(archive, o);
    // both joined (inspecting 32 MB takes far longer than opening a file twice), then one gives up
    await waitUntil(() => cacheStats(archive).waiting === 2, "both callers to wait for one inspection");
    ac.abort(new Error("this host was cancelled"));
    await expect(quitter).rejects.toThrow("this host was cancelled");
    const got = await stayer;
    expect(got.summary.sha256).toBe(sha256(bytes));
    expect(got.bytes?.equals(bytes)).toBe(true);
    got.release();
    expect(inspectionCount() - first).toBe(1);
  });

  it("unused entries are dropped after memory.idleMs; beyond memory.total an archive takes the upload path", async () => {
    const saved = { ...memory };
    try {
      memory.idleMs = 1;
      const archive = join(s.root, "r.tar.gz");
      const bytes = rawTar(files(50, "x"), { gzip: true });
      await writeFile(archive, bytes);
      let uploads = 0;
      const base = overSsh(fleet[0] as SshHost, s.host);
      const host: Host = { ...base, upload: (...a) => (uploads++, base.upload(...a)) };
      expect((await untarOn(host, archive, join(s.app, "releases", "a"))).status).toBe("committed");
      expect(uploads).toBe(0); // streamed
      await waitUntil(() => !cacheStats(archive).has, "the idle entry to go");
      memory.total = bytes.length - 1;
      expect((await untarOn(host, archive, join(s.app, "releases", "b"))).status).toBe("committed");
      expect(uploads).toBe(1);
      expect(await marker(join(s.app, "releases", "b"))).toBe(sha256(bytes));
      expect(await readdir(join(s.app, "releases"))).toEqual(["a", "b"]);
    } finally {
      Object.assign(memory, saved);
    }
  });

  it("streams a 25 MB archive over SSH, byte for byte", async () => {
    const blob = randomBytes(25 * 1024 * 1024);
    const archive = join(s.root, "big.tar");
    await writeFile(archive, rawTar([{ path: "blob", body: blob }]));
    const path = join(s.app, "releases", "big");
    expect((await untarOn(overSsh(fleet[0] as SshHost, s.host), archive, path)).status).toBe("committed");
    expect(sha256(await readFile(join(path, "blob")))).toBe(sha256(blob));
  });

  it("a host's tar killed mid-stream: the step's error, nothing at the path, no temporary directory", async () => {
    const archive = join(s.root, "big.tar");
    await writeFile(archive, rawTar([{ path: "blob", body: randomBytes(40 * 1024 * 1024) }]));
    const releases = join(s.app, "releases");
    const path = join(releases, "r");
    // a separate process stops the host's tar as soon as it runs (so it is surely mid-stream), then
    // kills it: this process is busy sending, a watcher on its event loop could come too late
    const watcher = spawn("sh", ["-c", KILL_TAR, "sh", releases], { stdio: "ignore" });
    const exited = once(watcher, "exit");
    const r = await untarOn(overSsh(fleet[0] as SshHost, s.host), archive, path);
    if (watcher.exitCode === null) watcher.kill(); // it never found the tar: the checks below fail
    const [code] = await exited;
    expect(code).toBe(0);
    expect(r.status).toBe("rolled-back");
    expect(r.steps[0]?.status).toBe("failed-unchanged");
    expect(r.error?.message).toMatch(/the host's tar could not extract the archive, nothing was kept/);
    expect(r.error?.found).toMatch(/killed by|exit code/);
    expect(r.error?.hint).toBeTruthy();
    expect(await readdir(releases)).toEqual([]);
  });

  describe("a full disk on the host", () => {
    let disk: string | undefined;
    afterEach(() => {
      if (disk) execFileSync("umount", [disk]);
      disk = undefined;
    });
    for (const store of ["memory", "file"] as const) {
      it.skipIf(process.getuid?.() !== 0)(
        `tar fails with ENOSPC: a clear error, nothing left (archive from ${store})`,
        async () => {
          const saved = memory.perArchive;
          if (store === "file") memory.perArchive = 0;
          try {
            disk = join(s.app, "releases");
            execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", disk]);
            const archive = join(s.root, "r.tar.gz");
            await writeFile(
              archive,
              rawTar([{ path: "blob", body: randomBytes(3 * 1024 * 1024) }], { gzip: true }),
            );
            const r = await untarOn(overSsh(fleet[0] as SshHost, s.host), archive, join(disk, "r"));
            expect(r.status).toBe("rolled-back");
            expect(r.steps[0]?.status).toBe("failed-unchanged");
            // GNU tar on a full tmpfs says "Wrote only 4608 of 10240 bytes"; SFTP says "Failure"
            if (store === "memory") {
              expect(r.error?.message).toMatch(
                /the host's tar could not extract the archive, nothing was kept/,
              );
              expect(r.error?.found).toMatch(/exit code 2: .*(Wrote only|No space left)/);
              expect(r.error?.hint).toMatch(/free space/);
            } else expect(r.error?.message).toMatch(/upload .* failed/);
            expect(await readdir(disk)).toEqual([]);
          } finally {
            memory.perArchive = saved;
          }
        },
      );
    }
  });
});

/** Stops, then kills, the first `tar` whose `-C` is a temporary directory in "$1" (sshd runs here). */
const KILL_TAR = `
while :; do
  for p in $(pgrep -x tar); do
    if tr '\\0' '\\n' < /proc/$p/cmdline 2>/dev/null | grep -q -- "^$1/\\.r\\.atomkit-"; then
      kill -STOP $p; kill -KILL $p; exit 0
    fi
  done
done`;

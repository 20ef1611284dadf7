// The release of DESIGN.md over SSH: upload + untar, stop the old process, swap `current`, start the new
// one with a health check (over a direct-tcpip channel). It commits; with a failing health check it
// rolls back, newest first, and every undo is verified.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, copyFileSync, existsSync, openSync, readlinkSync } from "node:fs";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { atom, fileTrail, run } from "@atomkit/core";
import { untar } from "@atomkit/step-fs";
import { startProcess, stopProcess } from "@atomkit/step-process";
import { swapSymlink } from "@atomkit/step-symlink";
import { freePort, PATIENCE_MS } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { SshHost } from "../src/index";
import { noSshd, tempDir, testHost } from "./_testbed";

const SERVER = fileURLToPath(new URL("./fixtures/server.mjs", import.meta.url));
const NODE = process.execPath;

describe.skipIf(noSshd)("the release of DESIGN.md over SSH", () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let host: SshHost;
  let app: string;
  let port: number;
  const tag = `atomkit-ssh-release-${randomBytes(6).toString("hex")}`;

  beforeEach(async () => {
    t = await tempDir("atomkit-ssh-release-");
    app = join(t.dir, "srv", "app");
    host = testHost({ stateDir: join(t.dir, "state") });
    port = await freePort();
    // release 1 is live: `current` → releases/1, its server running from there
    const r1 = join(app, "releases", "1");
    await mkdir(r1, { recursive: true });
    await mkdir(join(app, "shared"));
    copyFileSync(SERVER, join(r1, "server.mjs"));
    await writeFile(join(r1, "VERSION"), "1\n");
    await symlink("releases/1", join(app, "current"));
    await startOld();
  });

  afterEach(async () => {
    await host.close();
    // every process of the test first (a test that timed out may have left one starting), then the dir
    for (let left = await pidsWith(tag); left.length; left = await pidsWith(tag)) {
      for (const pid of left) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await t.cleanup();
  });

  it("commits: release 2 is live and answers", async () => {
    const result = await run(release(await tarball("2"), "2"), {
      host,
      trail: fileTrail({ dir: join(t.dir, "trails") }),
    });
    expect(result.status, result.error?.message).toBe("committed");
    expect(result.steps.map((s) => s.status)).toEqual(["applied", "applied", "applied", "applied"]);
    expect(readlinkSync(join(app, "current"))).toBe("releases/2");
    expect(await version()).toBe("2");
    expect(await pidsWith(tag)).toHaveLength(1);
  });

  it("a failing health check rolls the whole release back, every step verified", async () => {
    const before = await picture();
    const result = await run(release(await tarball("3", { unhealthy: true }), "3", 3_000), {
      host,
      trail: fileTrail({ dir: join(t.dir, "trails") }),
      backoffMs: 50,
    });
    expect(result.status, result.error?.message).toBe("rolled-back");
    expect(result.steps.map((s) => [s.name, s.status, s.verified])).toEqual([
      ["upload+untar", "undone", true],
      ["stop old", "undone", true],
      ["swap current", "undone", true],
      ["start new", "undone", true],
    ]);
    expect(result.reason?.message).toMatch(/health/i);
    expect(await picture()).toEqual(before);
    expect(await version()).toBe("1");
    expect(await pidsWith(tag)).toHaveLength(1);
  });

  // --- fixture ---

  /** `healthMs`: short for a release sure to fail its check, else all the time a loaded box needs. */
  function release(archive: string, v: string, healthMs = PATIENCE_MS) {
    const pidFile = join(app, "shared", "app.pid");
    return atom("release", {
      steps: [
        untar({ archive, path: join(app, "releases", v) }, { name: "upload+untar" }),
        stopProcess({ pidFile, graceMs: 3_000 }, { name: "stop old" }),
        swapSymlink({ link: join(app, "current"), target: `releases/${v}` }, { name: "swap current" }),
        startProcess(
          {
            command: [NODE, "server.mjs", `--port=${port}`, `--tag=${tag}`, "--unhealthy-if=UNHEALTHY"],
            cwd: join(app, "current"),
            pidFile,
            logFile: join(app, "shared", "app.log"),
            health: { http: { port, path: "/health" }, timeoutMs: healthMs, intervalMs: 100 },
            graceMs: 3_000,
          },
          { name: "start new" },
        ),
      ],
    });
  }

  async function tarball(v: string, o: { unhealthy?: boolean } = {}) {
    const src = join(t.dir, `src-${v}`);
    await mkdir(src);
    copyFileSync(SERVER, join(src, "server.mjs"));
    await writeFile(join(src, "VERSION"), `${v}\n`);
    if (o.unhealthy) await writeFile(join(src, "UNHEALTHY"), "");
    const archive = join(t.dir, `release-${v}.tar.gz`);
    execFileSync("tar", ["-czf", archive, "-C", src, "."]);
    return archive;
  }

  async function startOld() {
    const fd = openSync(join(app, "shared", "app.log"), "a");
    const child = spawn(NODE, ["server.mjs", `--port=${port}`, `--tag=${tag}`, "--unhealthy-if=UNHEALTHY"], {
      cwd: join(app, "current"),
      detached: true,
      stdio: ["ignore", fd, fd],
      // as an init script starts it: from a shell that `cd`ed there (PWD: where it was started)
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", PWD: join(app, "current") },
    });
    closeSync(fd);
    child.unref();
    await writeFile(join(app, "shared", "app.pid"), `${child.pid}\n`);
    const end = Date.now() + PATIENCE_MS;
    while ((await version()) !== "1") {
      if (Date.now() > end || child.exitCode !== null) throw new Error("release 1 did not start");
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async function version(): Promise<string | null> {
    try {
      return await (
        await fetch(`http://127.0.0.1:${port}/version`, { signal: AbortSignal.timeout(30_000) })
      ).text();
    } catch {
      return null;
    }
  }

  /** What a rollback must restore: the link, the releases, the files of each (pid and log change by nature). */
  async function picture() {
    const releases = (await readdir(join(app, "releases"))).sort();
    const files: Record<string, string> = {};
    for (const r of releases) {
      for (const f of (await readdir(join(app, "releases", r))).sort()) {
        files[`${r}/${f}`] = await readFile(join(app, "releases", r, f), "utf8");
      }
    }
    return {
      current: readlinkSync(join(app, "current")),
      releases,
      files,
      pidFile: existsSync(join(app, "shared", "app.pid")),
    };
  }
});

async function pidsWith(text: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = await readFile(`/proc/${name}/cmdline`, "utf8");
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (cmdline.includes(text) && state !== "Z") out.push(Number(name));
    } catch {}
  }
  return out;
}

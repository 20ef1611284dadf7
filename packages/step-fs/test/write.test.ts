import { spawn } from "node:child_process";
import { once } from "node:events";
import { chmod, lstat, mkdir, readdir, readFile, symlink, writeFile as writeLocal } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { atom, defineStep, fileTrail, type Host, localHost, memoryTrail, recover, run } from "@atomkit/core";
import { describeStepContract, hashTree } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { emptyTrash, type FileState, steps, writeFile } from "../src/index";
import { asRemote, bound, flaky, type Sandbox, sandbox } from "./_helpers";

const here = fileURLToPath(new URL(".", import.meta.url));
const SECRET = "password=hunter2-very-secret";

async function configFixture(s: Sandbox) {
  await mkdir(join(s.app, "shared"), { recursive: true });
  const path = join(s.app, "shared", "app.env");
  await writeLocal(path, "old=1\n");
  await chmod(path, 0o640);
  return path;
}

for (const mode of ["local", "remote"] as const) {
  const hostFor = (h: Host) => (mode === "remote" ? asRemote(h) : h);

  describeStepContract({
    name: `fs.write: replace a file (${mode})`,
    idempotent: true,
    async setup() {
      const s = await sandbox();
      const path = await configFixture(s);
      // the atomic write lands, then the connection drops (the first writeFile is the backup's record)
      const f = flaky(hostFor(s.host), "writeFile", "after", 1);
      return {
        host: f.host,
        step: () => writeFile({ path, content: SECRET, mode: 0o600 }),
        snapshot: () => hashTree(s.app),
        breakApply: f.arm,
        cleanup: s.cleanup,
      };
    },
  });

  describeStepContract({
    name: `fs.write: create a file (${mode})`,
    idempotent: true,
    async setup() {
      const s = await sandbox();
      await mkdir(join(s.app, "shared"), { recursive: true });
      const f = flaky(hostFor(s.host), "writeFile", "after");
      return {
        host: f.host,
        step: () => writeFile({ path: join(s.app, "shared", "new.conf"), content: "fresh\n" }),
        snapshot: () => hashTree(s.app),
        breakApply: f.arm,
        cleanup: s.cleanup,
      };
    },
  });
}

describe("fs.write: secrets, exact restore, ugly paths", () => {
  let s: Sandbox;
  beforeEach(async () => {
    s = await sandbox();
  });
  afterEach(() => s.cleanup());

  it("never writes the content to the trail, events or states (only its sha256)", async () => {
    const path = await configFixture(s);
    const trails = join(s.root, "trails");
    const events: unknown[] = [];
    const r = await run(atom("secret", { steps: [writeFile({ path, content: SECRET, mode: "0600" })] }), {
      host: s.host,
      trail: fileTrail({ dir: trails }),
      lock: false,
      onEvent: (e) => events.push(e),
    });
    expect(r.status).toBe("committed");
    expect(await readFile(path, "utf8")).toBe(SECRET);
    const [file] = await readdir(trails);
    const text = await readFile(join(trails, file!), "utf8");
    expect(text).not.toContain("hunter2");
    expect(JSON.stringify(events)).not.toContain("hunter2");
    expect(JSON.stringify(r.steps)).not.toContain("hunter2");
    expect(r.steps[0]?.after).toEqual({
      type: "file",
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      mode: 0o600,
    });
    // and a failure message does not carry it either
    const bad = await run(
      atom("bad", { steps: [writeFile({ path: join(s.app, "nope", "x"), content: SECRET })] }),
      {
        host: s.host,
        lock: false,
      },
    );
    expect(bad.error?.message).toContain("parent directory");
    expect(JSON.stringify(bad)).not.toContain("hunter2");
  });

  it("undo restores the exact old bytes and mode of a binary file from the backup", async () => {
    await mkdir(s.app, { recursive: true });
    const path = join(s.app, "blob.bin");
    const old = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));
    await writeLocal(path, old);
    await chmod(path, 0o751);
    const st = await bound<FileState>(writeFile, s.host, {
      path,
      content: Buffer.from("new bytes").toString("base64"),
      encoding: "base64",
      mode: 0o600,
    });
    const before = await st.observe();
    await st.apply(before);
    expect(await readFile(path, "utf8")).toBe("new bytes");
    expect((await lstat(path)).mode & 0o7777).toBe(0o600);
    // the old bytes wait in the content-addressed backups
    expect(await readdir(join(s.root, "state", "backups"))).toContain((before as { sha256: string }).sha256);
    const fresh = await bound<FileState>(writeFile, localHost({ stateDir: join(s.root, "state") }), {
      path,
      content: "",
    });
    await fresh.undo(JSON.parse(JSON.stringify(before)), JSON.parse(JSON.stringify(await st.observe())));
    expect(Buffer.compare(await readFile(path), old)).toBe(0);
    expect((await lstat(path)).mode & 0o7777).toBe(0o751);
  });

  it("undo refuses clearly when the backup is gone (emptyTrash), leaving the file", async () => {
    const path = await configFixture(s);
    const st = await bound<FileState>(writeFile, s.host, { path, content: "new\n" });
    const before = await st.observe();
    await st.apply(before);
    const { removed } = await emptyTrash(s.host, { olderThanMs: 0, now: Date.now() + 1000 });
    expect(removed.some((p) => p.includes("backups"))).toBe(true);
    await expect(st.undo(before, await st.observe())).rejects.toThrow(/backup .* is missing/);
    expect(await readFile(path, "utf8")).toBe("new\n");
  });

  it("refuses to replace a directory or a symlink", async () => {
    await mkdir(join(s.app, "dir"), { recursive: true });
    await symlink("dir", join(s.app, "link"));
    const picture = await hashTree(s.app);
    for (const name of ["dir", "link"]) {
      const r = await run(atom("refuse", { steps: [writeFile({ path: join(s.app, name), content: "x" })] }), {
        host: s.host,
        lock: false,
      });
      expect(r.steps[0]?.status).toBe("failed-unchanged");
      expect(r.error?.message).toContain("not a regular file");
    }
    expect(await hashTree(s.app)).toBe(picture);
  });

  it("refuses bad params naming the field, without echoing the content", async () => {
    const cases: Array<[unknown, string]> = [
      [{ path: "relative", content: "x" }, "path"],
      [{ path: "/x", content: 42 }, "content"],
      [{ path: "/x", content: "x", mode: "rw-r--r--" }, "mode"],
      [{ path: "/x", content: "x", mode: 0o10000 }, "mode"],
      [{ path: "/x", content: "x", encoding: "hex" }, "encoding"],
      [{ path: "/x" }, "content"],
    ];
    for (const [params, field] of cases) {
      await expect(
        run(atom("bad", { steps: [writeFile(params as never)] }), {
          host: s.host,
          lock: false,
          trail: memoryTrail(),
        }),
      ).rejects.toMatchObject({ issues: [{ path: field }] });
    }
  });

  it("a run killed after the write is rolled back by recover in a new process, from the trail alone", async () => {
    const path = await configFixture(s);
    const trails = join(s.root, "trails");
    const picture = await hashTree(s.app);
    const child = spawn(
      process.execPath,
      [join(here, "fixtures", "crash-write.mjs"), path, join(s.root, "state"), trails],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    // also when the test fails or times out: the deployer hangs on purpose until killed
    onTestFinished(() => {
      child.kill("SIGKILL");
    });
    const closed = once(child, "close");
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    while (!out.includes("written")) {
      if (child.exitCode !== null) throw new Error(`child exited early: ${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGKILL");
    await closed;
    expect(await readFile(path, "utf8")).toBe(SECRET);
    const hang = defineStep({
      kind: "test.hang",
      params: (p: null) => p,
      observe: async () => null,
      apply: async () => {},
      undo: async () => {},
    });
    const [result] = await recover(fileTrail({ dir: trails }), {
      host: localHost({ stateDir: join(s.root, "state") }),
      steps: [...steps, hang],
      lock: false,
      backoffMs: 1,
    });
    expect(result?.status).toBe("rolled-back");
    expect(result?.steps.find((x) => x.kind === "fs.write")).toMatchObject({
      status: "undone",
      verified: true,
    });
    expect(await hashTree(s.app)).toBe(picture);
    const [file] = await readdir(trails);
    expect(await readFile(join(trails, file!), "utf8")).not.toContain("hunter2");
  });
});

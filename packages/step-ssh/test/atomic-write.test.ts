// writeFile over SFTP: exclusive creates are whole or absent (what leases rely on), temp names stay legal.
import { existsSync, readdirSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { HostError } from "@atomkit/core";
import { tempPrefix } from "@atomkit/core/kit";
import { HOSTILE_STRINGS } from "@atomkit/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { linkOverExec } from "../src/_link";
import { childProcess, killSession, noSshd, sessionPid, tempDir, testHost, waitFor } from "./_testbed";

describe.skipIf(noSshd)("sshHost writeFile", () => {
  const host = testHost();
  afterAll(() => host.close());

  it("an exclusive create cut mid-write never leaves the path empty or partial", async () => {
    const { dir, cleanup } = await tempDir();
    const path = `${dir}/lease.json`;
    try {
      await host.stat(dir); // the SFTP session is open: its server process is there to freeze
      const session = await sessionPid(host);
      const sftpServer = childProcess(session, "sftp-server");
      const data = Buffer.alloc(64 * 1024 * 1024, "x");
      const writing = host.writeFile(path, data, { exclusive: true });
      writing.catch(() => {});
      // freeze the server as soon as something was written: the write is now held half-way
      await waitFor(() => readdirSync(dir).some((f) => statSync(`${dir}/${f}`).size > 0));
      process.kill(sftpServer, "SIGSTOP");
      try {
        // a reader (the next run's lease check) never sees the path partial
        if (existsSync(path)) expect(readFileSync(path).equals(data)).toBe(true);
      } finally {
        killSession(session);
        process.kill(sftpServer, "SIGKILL");
      }
      await expect(writing).rejects.toMatchObject({ reason: "CONNECTION" });
      if (existsSync(path)) expect(readFileSync(path).equals(data)).toBe(true);
      else await host.writeFile(path, "next", { exclusive: true }); // nothing blocks the next create
      // what the cut left is a temp name beside the path, for cleanup to find
      for (const f of readdirSync(dir).filter((f) => f !== "lease.json")) {
        expect(f.startsWith(tempPrefix(path))).toBe(true);
      }
    } finally {
      await cleanup();
    }
  });

  it("an exclusive create writes the whole content with its mode, or fails EEXIST leaving all as it was", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      await host.writeFile(`${dir}/new`, "content", { exclusive: true, mode: 0o600 });
      expect(readFileSync(`${dir}/new`, "utf8")).toBe("content");
      expect(statSync(`${dir}/new`).mode & 0o7777).toBe(0o600);
      expect(statSync(`${dir}/new`).nlink).toBe(1); // the temp name is gone

      await writeFile(`${dir}/file`, "theirs");
      await mkdir(`${dir}/dir`);
      symlinkSync(`${dir}/nowhere`, `${dir}/dangling`);
      for (const name of ["file", "dir", "dangling", "new"]) {
        const err = await host.writeFile(`${dir}/${name}`, "mine", { exclusive: true }).catch((e) => e);
        expect(err, name).toBeInstanceOf(HostError);
        expect(err, name).toMatchObject({ reason: "EEXIST" });
        expect(String(err.message)).toContain(`${dir}/${name}`);
      }
      expect(readFileSync(`${dir}/file`, "utf8")).toBe("theirs");
      expect(readdirSync(`${dir}/dir`)).toEqual([]);
      expect(existsSync(`${dir}/nowhere`)).toBe(false); // a dangling symlink is not followed
      expect(readdirSync(dir).sort()).toEqual(["dangling", "dir", "file", "new"]);
      await expect(host.writeFile(`${dir}/none/x`, "x", { exclusive: true })).rejects.toMatchObject({
        reason: "ENOENT",
      });
    } finally {
      await cleanup();
    }
  });

  it("concurrent exclusive creates of one path: exactly one wins, whole", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => host.writeFile(`${dir}/lock`, `owner ${i}`, { exclusive: true })),
      );
      const won = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
      expect(won).toHaveLength(1);
      for (const r of results)
        if (r.status === "rejected") expect(r.reason).toMatchObject({ reason: "EEXIST" });
      expect(readFileSync(`${dir}/lock`, "utf8")).toBe(`owner ${won[0]}`);
      expect(readdirSync(dir)).toEqual(["lock"]);
    } finally {
      await cleanup();
    }
  });

  it("writes a file whose name is 250 bytes long (the temp name beside it stays legal)", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const long = `${dir}/${"é".repeat(120)}${"a".repeat(10)}`; // 250 bytes of UTF-8
      expect(Buffer.byteLength(long.slice(dir.length + 1))).toBe(250);
      await host.writeFile(long, "one");
      await host.writeFile(long, "two");
      expect(readFileSync(long, "utf8")).toBe("two");
      await host.rm(long);
      await host.writeFile(long, "three", { exclusive: true });
      expect(readFileSync(long, "utf8")).toBe("three");
      expect(readdirSync(dir)).toHaveLength(1);
    } finally {
      await cleanup();
    }
  });
});

describe.skipIf(noSshd)("linkOverExec (when the server offers no hardlink@openssh.com)", () => {
  const host = testHost();
  afterAll(() => host.close());

  it("links like link(2): EEXIST on anything at the target, never into a directory", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      await writeFile(`${dir}/src`, "data");
      await mkdir(`${dir}/dir`);
      symlinkSync("nowhere", `${dir}/dangling`);
      await linkOverExec(host, `${dir}/src`, `${dir}/dst`);
      expect(statSync(`${dir}/dst`).ino).toBe(statSync(`${dir}/src`).ino);
      for (const name of ["dst", "dir", "dangling"]) {
        await expect(linkOverExec(host, `${dir}/src`, `${dir}/${name}`), name).rejects.toMatchObject({
          reason: "EEXIST",
        });
      }
      expect(readdirSync(`${dir}/dir`)).toEqual([]);
      await expect(linkOverExec(host, `${dir}/none`, `${dir}/x`)).rejects.toMatchObject({ reason: "ENOENT" });
    } finally {
      await cleanup();
    }
  });

  it("passes hostile names literally", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const names = HOSTILE_STRINGS.filter((w) => w && !w.includes("/") && w !== "." && w !== "..");
      await writeFile(`${dir}/src`, "data");
      await Promise.all(
        names.map(async (word, i) => {
          await mkdir(`${dir}/${i}`);
          await linkOverExec(host, `${dir}/src`, `${dir}/${i}/${word}`);
          expect(readdirSync(`${dir}/${i}`), `#${i}`).toEqual([word]);
        }),
      );
      // a relative name starting with '-' is not taken for an option
      await host.exec(["sh", "-c", "cd && rm -f ./-atomkit-link-test && printf x > ./-atomkit-src-test"]);
      await linkOverExec(host, "-atomkit-src-test", "-atomkit-link-test");
      const r = await host.exec(["sh", "-c", "cat ./-atomkit-link-test && rm -f ./-atomkit-*-test"]);
      expect(r.stdout).toBe("x");
      expect(existsSync("/tmp/atomkit-pwned")).toBe(false);
    } finally {
      await cleanup();
    }
  });
});

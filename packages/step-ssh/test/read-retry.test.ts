// Read-only Host methods cut mid-call (the server-side session killed) are retried once on a new link.
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, symlinkSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import type { Host } from "@atomkit/core";
import { freePort } from "@atomkit/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { childProcess, killSession, noSshd, sessionPid, tempDir, testHost, waitFor } from "./_testbed";

describe.skipIf(noSshd)("read-only calls cut mid-call", () => {
  const host = testHost();
  afterAll(() => host.close());

  /**
   * Starts `call` with the session's sftp-server frozen, so the request is pending, not answered; then
   * kills the session (the link drops under the call) and returns the call's outcome.
   */
  async function cutSftp<T>(
    call: () => Promise<T>,
  ): Promise<{ value?: T; error?: unknown; session: number }> {
    await host.stat("/"); // the SFTP session is open
    const session = await sessionPid(host);
    const sftpServer = childProcess(session, "sftp-server");
    process.kill(sftpServer, "SIGSTOP");
    let pending: Promise<T>;
    try {
      pending = call();
      // every microtask has run: the request is on its way and cannot be answered
      await new Promise((r) => setImmediate(r));
    } finally {
      killSession(session);
      process.kill(sftpServer, "SIGKILL");
    }
    return pending.then(
      (value) => ({ value, session }),
      (error: unknown) => ({ error, session }),
    );
  }

  it.each<[string, (h: Host, dir: string) => Promise<unknown>]>([
    ["stat", (h: Host, dir: string) => h.stat(`${dir}/file`).then((s) => s?.size)],
    ["lstat", (h: Host, dir: string) => h.lstat(`${dir}/link`).then((s) => s?.type)],
    ["readFile", (h: Host, dir: string) => h.readFile(`${dir}/file`).then(String)],
    ["readdir", (h: Host, dir: string) => h.readdir(dir).then((l) => l.sort())],
    ["readlink", (h: Host, dir: string) => h.readlink(`${dir}/link`)],
  ])("%s is retried on a new link and answers", async (_op, call) => {
    const { dir, cleanup } = await tempDir();
    try {
      await writeFile(`${dir}/file`, "hello");
      symlinkSync("file", `${dir}/link`);
      const expected = await call(host, dir);
      const outcome = await cutSftp(() => call(host, dir));
      expect(outcome.error).toBeUndefined();
      expect(outcome.value).toEqual(expected);
      expect(await sessionPid(host)).not.toBe(outcome.session);
    } finally {
      await cleanup();
    }
  });

  it("a call that changes something is not retried: it fails CONNECTION (whether it landed is unknown)", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const outcome = await cutSftp(() => host.mkdir(`${dir}/made`));
      expect(outcome.error).toMatchObject({ reason: "CONNECTION" });
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      await cleanup();
    }
  });

  it("hash (sha256sum over exec) is retried on a new link and answers", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      // sha256sum blocks opening a FIFO until a writer comes: the call is held mid-way, on the host
      const fifo = `${dir}/fifo`;
      execFileSync("mkfifo", [fifo]);
      const session = await sessionPid(host);
      let failed: unknown;
      const hashing = host.hash(fifo);
      hashing.catch((e: unknown) => (failed = e));
      await waitFor(() => hasherOf(fifo) > 0);
      const first = hasherOf(fifo);
      killSession(session);
      process.kill(first, "SIGKILL"); // orphaned by the cut; it would steal the writer's bytes
      await waitFor(() => !!failed || (hasherOf(fifo) > 0 && hasherOf(fifo) !== first));
      expect(failed).toBeUndefined();
      const writer = spawn("sh", ["-c", 'printf hello > "$1"', "sh", fifo], { stdio: "ignore" });
      const written = new Promise((r) => writer.once("exit", r));
      expect(await hashing).toBe(createHash("sha256").update("hello").digest("hex"));
      await written;
      expect(await sessionPid(host)).not.toBe(session);
    } finally {
      await cleanup();
    }
  });
});

describe.skipIf(noSshd)("read-only calls on a host that cannot be reached", () => {
  it("are not tried again beyond the reconnect attempts (no second round of them)", async () => {
    // a server that hangs up on every connection: each connect attempt is one accept here
    let accepted = 0;
    const server = createServer((socket) => {
      accepted++;
      socket.destroy();
    });
    const p = await freePort();
    await new Promise<void>((resolve) => server.listen(p, "127.0.0.1", resolve));
    try {
      const h = testHost({ reconnect: { retries: 1, backoffMs: 10 } }, p);
      await expect(h.stat("/")).rejects.toMatchObject({ reason: "CONNECTION" });
      await expect(h.hash("/etc/hostname")).rejects.toMatchObject({ reason: "CONNECTION" });
      await h.close();
      expect(accepted).toBe(4); // 2 attempts per call
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

/** The pid of a live `sha256sum` reading `path`, or 0. */
function hasherOf(path: string): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      const state = readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.[0];
      if (argv[0]?.endsWith("sha256sum") && argv.includes(path) && state !== "Z") return Number(entry);
    } catch {
      // exited meanwhile
    }
  }
  return 0;
}

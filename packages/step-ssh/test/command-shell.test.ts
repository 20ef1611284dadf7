import { existsSync, readFileSync } from "node:fs";
import { HostError } from "@atomkit/core";
import { HOSTILE_STRINGS } from "@atomkit/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { noSshd, tempDir, testHost, waitFor } from "./_testbed";

// Short commands run in one long-lived shell per connection instead of a session each: sshd starts
// the login shell (and its startup files) for every session. Each behaves as if it had a channel of
// its own: its output, its exit status, its process group killed on timeout, hostile words intact.

const parentOf = async (host: ReturnType<typeof testHost>, input?: string) =>
  Number((await host.exec(["sh", "-c", "echo $PPID"], input === undefined ? {} : { input })).stdout.trim());

describe.skipIf(noSshd)("sshHost: the command shell", () => {
  const host = testHost();
  afterAll(() => host.close());

  it("runs short commands one after another in one shell; a command with input gets a session", async () => {
    const parents = [];
    for (let i = 0; i < 6; i++) parents.push(await parentOf(host));
    expect(new Set(parents).size).toBe(1);
    // with stdin input: a session of its own, whose shell is a child of the connection's sshd; the
    // command shell is a child of that sshd too, and the short commands are its children
    const own = [await parentOf(host, ""), await parentOf(host, "")];
    expect(own[0]).toBe(own[1]);
    expect(parents[0]).not.toBe(own[0]);
    const stat = readFileSync(`/proc/${parents[0]}/stat`, "utf8");
    expect(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])).toBe(own[0]);
  });

  it("keeps stdout and stderr apart, exact, with or without a final newline", async () => {
    const r = await host.exec(["sh", "-c", 'printf "out no newline"; printf "err\\nline 2" >&2']);
    expect(r).toMatchObject({ code: 0, signal: null, stdout: "out no newline", stderr: "err\nline 2" });
    const empty = await host.exec(["true"]);
    expect(empty).toMatchObject({ code: 0, stdout: "", stderr: "" });
    // a megabyte of output arrives whole, in many pieces
    const big = await host.exec(["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x"]);
    expect(big.stdout.length).toBe(1_048_576);
    expect(big.stdout).toMatch(/^x+$/);
  });

  it("output that looks like the end marker, without its nonce, is output", async () => {
    const forged = "\x1eatomkit-done 0123456789abcdef01234567 0\n";
    const r = await host.exec(["sh", "-c", 'printf "%s" "$1"; printf "%s" "$1" >&2; exit 4', "sh", forged], {
      reject: false,
    });
    expect(r).toMatchObject({ code: 4, stdout: forged, stderr: forged });
  });

  it("output a command's leftover process writes later ends that shell; the next command's output is its own", async () => {
    const first = await parentOf(host);
    // returns at once; its background child writes to the shell's stdout after the command ended
    await host.exec(["sh", "-c", "(sleep 0.3; echo late; echo late >&2) &"]);
    // the shell is closed (from our side) once that output came: its process ends
    await waitFor(
      () => !existsSync(`/proc/${first}`) || /\) Z/.test(readFileSync(`/proc/${first}/stat`, "utf8")),
    );
    const r = await host.exec(["sh", "-c", "echo $PPID"]);
    expect(r.stdout).toMatch(/^\d+\n$/);
    expect(r.stderr).toBe("");
    expect(Number(r.stdout)).not.toBe(first);
  });

  it("reports exit codes, a signal, and a missing program as a session would", async () => {
    expect((await host.exec(["sh", "-c", "exit 3"], { reject: false })).code).toBe(3);
    expect((await host.exec(["sh", "-c", "exit 255"], { reject: false })).code).toBe(255);
    await expect(host.exec(["sh", "-c", "exit 7"])).rejects.toMatchObject({ reason: "EXIT", exitCode: 7 });
    expect(await host.exec(["sh", "-c", "kill -9 $$"], { reject: false })).toMatchObject({
      code: null,
      signal: "SIGKILL",
    });
    // named by the host, whatever this machine numbers it
    expect(await host.exec(["sh", "-c", "kill -USR1 $$"], { reject: false })).toMatchObject({
      code: null,
      signal: "SIGUSR1",
    });
    await expect(host.exec(["atomkit-no-such-program"])).rejects.toMatchObject({ reason: "ENOENT" });
  });

  it("passes every hostile word as one argument, cwd and env value", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      for (const [i, word] of HOSTILE_STRINGS.entries()) {
        const r = await host.exec(["sh", "-c", 'printf "%s|%s" "$1" "$ATOMKIT_V"', "sh", word], {
          env: { ATOMKIT_V: word },
          cwd: dir,
        });
        expect(r.stdout, `hostile string #${i}`).toBe(`${word}|${word}`);
      }
    } finally {
      await cleanup();
    }
  });

  it("a timeout kills the command's process group, and the shell serves the next command", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const before = await parentOf(host);
      const child = `${dir}/child`;
      const r = await host.exec(["sh", "-c", 'sleep 600 & echo $! > "$1"; wait', "sh", child], {
        timeoutMs: 1_000,
        reject: false,
      });
      expect(r).toMatchObject({ code: null, signal: "SIGKILL" });
      // the background sleep was in the command's group: it is gone too
      const pid = Number(readFileSync(child, "utf8").trim());
      await waitFor(
        () => !existsSync(`/proc/${pid}`) || /\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8")),
      );
      expect(await parentOf(host)).toBe(before);
    } finally {
      await cleanup();
    }
  });

  it("two commands at once: one in the shell, the other in a session of its own, both right", async () => {
    const [a, b] = await Promise.all([
      host.exec(["sh", "-c", "sleep 0.3; echo a $PPID"]),
      host.exec(["sh", "-c", "echo b $PPID"]),
    ]);
    expect(a.stdout).toMatch(/^a \d+\n$/);
    expect(b.stdout).toMatch(/^b \d+\n$/);
    expect(a.stdout.split(" ")[1]).not.toBe(b.stdout.split(" ")[1]);
  });

  it("a shell killed under a command fails that command and kills it; the next starts a new shell", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const shellPid = await parentOf(host);
      const file = `${dir}/pid`;
      const pending = host
        .exec(["sh", "-c", 'echo $$ > "$1"; exec sleep 600', "sh", file])
        .catch((e: unknown) => e);
      await waitFor(() => existsSync(file) && readFileSync(file, "utf8").trim() !== "");
      const sleeper = Number(readFileSync(file, "utf8").trim());
      process.kill(shellPid, "SIGKILL");
      const err = await pending;
      expect(err).toBeInstanceOf(HostError);
      expect(String(err)).toMatch(/without an exit status/);
      await waitFor(
        () => !existsSync(`/proc/${sleeper}`) || /\) Z/.test(readFileSync(`/proc/${sleeper}/stat`, "utf8")),
      );
      const next = await parentOf(host);
      expect(next).not.toBe(shellPid);
      expect((await host.exec(["echo", "ok"])).stdout).toBe("ok\n");
    } finally {
      await cleanup();
    }
  });
});

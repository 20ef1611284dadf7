import { execFileSync, spawn } from "node:child_process";
import { createWriteStream, existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { atom, HostError, memoryTrail, run } from "@atomkit/core";
import { freePort } from "@atomkit/testkit";
import { utils } from "ssh2";
import { afterAll, describe, expect, it } from "vitest";
import { execCommand } from "../src/index";
import {
  countingRelay,
  env,
  killSession,
  noSshd,
  port,
  ports,
  sessionPid,
  sshHostAddress,
  tempDir,
  testHost,
  waitFor,
} from "./_testbed";

const stateRoot = env.ATOMKIT_SSH_STATE_DIR ?? "/tmp/atomkit-testbed";
const hostKeyLine = (p: number) =>
  readFileSync(`${stateRoot}/sshd-${p}/ssh_host_ed25519_key.pub`, "utf8").split(" ").slice(0, 2).join(" ");
const fingerprintOf = (p: number) =>
  execFileSync("ssh-keygen", ["-lf", `${stateRoot}/sshd-${p}/ssh_host_ed25519_key.pub`], {
    encoding: "utf8",
  }).split(" ")[1] as string;

describe.skipIf(noSshd)("faults: refused connections", () => {
  it("a wrong key is refused at once with reason AUTH, naming the user and what was tried", async () => {
    const wrong = utils.generateKeyPairSync("ed25519");
    const relay = await countingRelay(port);
    const h = testHost(
      {
        privateKey: wrong.private,
        privateKeyPath: undefined as unknown as string,
        hostKey: fingerprintOf(port) as `SHA256:${string}`,
      },
      relay.port,
    );
    const err = await h.exec(["true"]).catch((e: unknown) => e);
    await h.close();
    await relay.close();
    expect(err).toBeInstanceOf(HostError);
    expect(err).toMatchObject({ reason: "AUTH", code: "ATOM_HOST" });
    expect(String(err)).toMatch(/authentication as root .* failed/);
    expect(String(err)).not.toContain("PRIVATE KEY");
    expect(relay.connections()).toBe(1); // not retried: a refused key stays refused
  });

  it("an unknown host key is refused with its fingerprint and the line that trusts it", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      await writeFile(`${dir}/known_hosts`, "# empty\n");
      const h = testHost({ knownHosts: `${dir}/known_hosts` });
      const err = (await h.exec(["true"]).catch((e: unknown) => e)) as HostError;
      await h.close();
      expect(err).toMatchObject({ reason: "HOST_KEY" });
      expect(err.message).toContain("is unknown");
      expect(err.message).toContain(fingerprintOf(port));
      expect(err.hint).toContain(`[${sshHostAddress}]:${port} ${hostKeyLine(port)}`);
      expect(err.hint).toContain(`ssh-keyscan -p ${port}`);
    } finally {
      await cleanup();
    }
  });

  it.skipIf(ports.length < 2)(
    "a changed host key is refused, showing both fingerprints and how to fix it",
    async () => {
      const { dir, cleanup } = await tempDir();
      try {
        const other = ports[1] as number;
        // the key of another instance recorded for this one: what a reinstall or an attacker looks like
        await writeFile(`${dir}/known_hosts`, `[${sshHostAddress}]:${port} ${hostKeyLine(other)}\n`);
        const h = testHost({ knownHosts: `${dir}/known_hosts` });
        const err = (await h.exec(["true"]).catch((e: unknown) => e)) as HostError;
        await h.close();
        expect(err).toMatchObject({ reason: "HOST_KEY" });
        expect(err.message).toContain("HOST KEY CHANGED");
        expect(err.message).toContain(fingerprintOf(port));
        expect(err.message).toContain(fingerprintOf(other));
        expect(err.hint).toContain("ssh-keygen -R");
      } finally {
        await cleanup();
      }
    },
  );

  it("a revoked or wrongly pinned host key is refused with reason HOST_KEY, not retried", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      await writeFile(`${dir}/known_hosts`, `@revoked [${sshHostAddress}]:${port} ${hostKeyLine(port)}\n`);
      const revoked = testHost({ knownHosts: `${dir}/known_hosts` });
      const err = (await revoked.exec(["true"]).catch((e: unknown) => e)) as HostError;
      await revoked.close();
      expect(err).toMatchObject({ reason: "HOST_KEY" });
      expect(err.message).toContain("@revoked");
      const wrongPin = `SHA256:${Buffer.alloc(32, 1).toString("base64").replace(/=+$/, "")}` as const;
      const relay = await countingRelay(port);
      const pinned = testHost({ hostKey: wrongPin }, relay.port);
      const err2 = (await pinned.exec(["true"]).catch((e: unknown) => e)) as HostError;
      await pinned.close();
      await relay.close();
      expect(err2).toMatchObject({ reason: "HOST_KEY", expected: wrongPin });
      expect(err2.message).toContain("pinned fingerprint");
      expect(relay.connections()).toBe(1); // not retried
    } finally {
      await cleanup();
    }
  });

  it("an unusable private key (garbage, or a key file that is not there) fails with reason AUTH", async () => {
    const garbage = testHost({ privateKey: "not a key", privateKeyPath: undefined as unknown as string });
    const err = (await garbage.exec(["true"]).catch((e: unknown) => e)) as HostError;
    await garbage.close();
    expect(err).toMatchObject({ reason: "AUTH" });
    expect(err.message).toContain("private key");
    expect(err.message).not.toContain("not a key");
    const missing = testHost({ privateKeyPath: "/nonexistent/atomkit-key" });
    const err2 = (await missing.exec(["true"]).catch((e: unknown) => e)) as HostError;
    await missing.close();
    expect(err2).toMatchObject({ reason: "AUTH" });
    expect(err2.message).toContain("/nonexistent/atomkit-key");
  });

  it("a host that is down fails with reason CONNECTION after a bounded, short retry", async () => {
    const closed = await freePort();
    // a refused connection is retried `retries` times, then fails: it never waits out the ready timeout
    const h = testHost({ reconnect: { retries: 2, backoffMs: 50 }, readyTimeoutMs: 120_000 }, closed);
    const started = Date.now();
    const err = (await h.exec(["true"]).catch((e: unknown) => e)) as HostError;
    await h.close();
    expect(err).toMatchObject({ reason: "CONNECTION" });
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(err.hint).toContain(`port ${closed}`);
    expect(Date.now() - started).toBeLessThan(120_000);
  });
});

describe.skipIf(noSshd)("faults: the link is cut (server-side session killed)", () => {
  const host = testHost();
  afterAll(() => host.close());

  it("the next call reconnects after a drop; a call in flight fails with reason CONNECTION", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const first = await sessionPid(host);
      // still running when the link is cut, however late the test gets to cut it
      const pending = host.exec(["sh", "-c", 'echo $$ > "$1"; exec sleep 600', "sh", `${dir}/flag`]);
      await waitFor(() => existsSync(`${dir}/flag`) && readFileSync(`${dir}/flag`, "utf8").trim() !== "");
      killSession(first);
      await expect(pending).rejects.toMatchObject({ reason: "CONNECTION" });
      const second = await sessionPid(host);
      expect(second).not.toBe(first);
      expect(host.connected).toBe(true);
    } finally {
      killPidIn(`${dir}/flag`);
      await cleanup();
    }
  });

  it("keep-alive notices a server that stopped answering; the call in flight fails with CONNECTION", async () => {
    const h = testHost({ keepaliveIntervalMs: 200, keepaliveCountMax: 2 });
    const pid = await sessionPid(h);
    const { dir, cleanup } = await tempDir();
    try {
      // runs far longer than the test may: only the keep-alive can end this call, on a box of any speed
      const pending = h.exec(["sh", "-c", 'echo $$ > "$1"; exec sleep 600', "sh", `${dir}/pid`]);
      await waitFor(() => existsSync(`${dir}/pid`) && readFileSync(`${dir}/pid`, "utf8").trim() !== "");
      process.kill(pid, "SIGSTOP"); // the session freezes: no reply, no FIN, as behind a dead router
      await expect(pending).rejects.toMatchObject({ reason: "CONNECTION" });
      expect(h.connected).toBe(false);
    } finally {
      process.kill(pid, "SIGKILL");
      await h.close();
      killPidIn(`${dir}/pid`);
      await cleanup();
    }
  });

  it("an upload cut in the middle fails cleanly with CONNECTION and the host keeps working", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      // a FIFO as the source holds the upload open until the test has cut the link (the writer
      // sleeps far longer than the test may take to get there, and is killed after)
      execFileSync("mkfifo", [`${dir}/fifo`]);
      const writer = spawn("sh", ["-c", `head -c 4194304 /dev/zero; exec sleep 600`], {
        stdio: ["ignore", "pipe", "ignore"],
      });
      const feeding = new Promise<void>((resolve) => {
        const out = createWriteStream(`${dir}/fifo`);
        writer.stdout.pipe(out);
        out.on("close", () => resolve());
        out.on("error", () => resolve());
      });
      const pid = await sessionPid(host);
      const upload = host.upload(`${dir}/fifo`, `${dir}/remote.bin`);
      await waitFor(() => existsSync(`${dir}/remote.bin`) && readFileSync(`${dir}/remote.bin`).length > 0);
      killSession(pid);
      await expect(upload).rejects.toMatchObject({ reason: "CONNECTION" });
      writer.kill();
      await feeding;
      expect((await host.exec(["echo", "alive"])).stdout).toBe("alive\n");
    } finally {
      await cleanup();
    }
  });

  it("a run whose step is cut mid-apply: check sees the partial change, rollback completes verified", async () => {
    const { dir, cleanup } = await tempDir();
    const shPid = `${dir}/sh.pid`;
    try {
      const a = `${dir}/a`;
      const b = `${dir}/b`;
      const pidFile = `${dir}/pid`;
      const steps = [
        execCommand(
          { command: ["sh", "-c", 'echo A > "$1"', "sh", a], undo: ["rm", "-f", a], check: ["cat", a] },
          { name: "write a" },
        ),
        execCommand(
          {
            // changes state, says it runs, then is cut while it still runs (it would run far longer
            // than the test may take to cut it)
            command: [
              "sh",
              "-c",
              'echo B > "$2"; echo $$ > "$3"; echo $PPID > "$1"; exec sleep 600',
              "sh",
              pidFile,
              b,
              shPid,
            ],
            undo: ["rm", "-f", b],
            check: ["cat", b],
          },
          { name: "write b, then hang" },
        ),
      ];
      // the connection's sshd (the command itself runs in the command shell, a child of it)
      const session = await sessionPid(host);
      const running = run(atom("cut-mid-step", { steps }), {
        host,
        trail: memoryTrail(),
        lock: false,
        backoffMs: 10,
      });
      await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "");
      killSession(session);
      const result = await running;
      expect(result.status, result.error?.message).toBe("rolled-back");
      expect(result.steps[1]).toMatchObject({ status: "undone", verified: true, changed: true });
      expect(result.steps[0]).toMatchObject({ status: "undone", verified: true });
      expect(String(result.reason?.message)).toMatch(/connection dropped/i);
      expect(existsSync(a) || existsSync(b)).toBe(false);
    } finally {
      killPidIn(shPid);
      await cleanup();
    }
  });

  it("a run whose link drops between steps reconnects and commits", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const pid = await sessionPid(host);
      const steps = ["a", "b"].map((n) =>
        execCommand(
          {
            command: ["touch", `${dir}/${n}`],
            undo: ["rm", "-f", `${dir}/${n}`],
            check: ["ls", `${dir}/${n}`],
          },
          { name: `touch ${n}` },
        ),
      );
      const result = await run(atom("cut-between-steps", { steps }), {
        host,
        lock: false,
        onEvent: (e) => {
          if (e.type === "step:applied" && e.step === "touch a") killSession(pid);
        },
      });
      expect(result.status, result.error?.message).toBe("committed");
      expect(existsSync(`${dir}/a`) && existsSync(`${dir}/b`)).toBe(true);
      expect(await sessionPid(host)).not.toBe(pid);
    } finally {
      await cleanup();
    }
  });
});

/** SIGKILLs the process whose pid a test command wrote to `file`, if it did and it still runs. */
function killPidIn(file: string): void {
  const pid = existsSync(file) ? Number(readFileSync(file, "utf8")) : 0;
  try {
    if (pid > 0) process.kill(pid, "SIGKILL");
  } catch {}
}

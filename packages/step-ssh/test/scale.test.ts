import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer, type Socket, connect as tcpConnect } from "node:net";
import { HostError } from "@atomkit/core";
import { freePort } from "@atomkit/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { sshHandshakesActive } from "../src/_handshakes";
import { setSshHandshakeLimit } from "../src/index";
import { env, noSshd, port, sshHostAddress, tempDir, testHost, waitFor } from "./_testbed";

// What many hosts cost one controller: handshakes are bounded over every host, and a link is never
// left open by a connection that failed after its handshake.

const stateRoot = env.ATOMKIT_SSH_STATE_DIR ?? "/tmp/atomkit-testbed";
const fingerprintOf = (p: number) =>
  execFileSync("ssh-keygen", ["-lf", `${stateRoot}/sshd-${p}/ssh_host_ed25519_key.pub`], {
    encoding: "utf8",
  }).split(" ")[1] as `SHA256:${string}`;

/** A TCP relay to `target` that calls `onConnection` as each connection arrives and counts those open. */
async function relay(target: number, onConnection: () => void = () => {}) {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    onConnection();
    const upstream = tcpConnect(target, sshHostAddress);
    open.add(client);
    client.on("close", () => {
      open.delete(client);
      upstream.destroy();
    });
    upstream.on("close", () => client.destroy());
    client.pipe(upstream).pipe(client);
    client.on("error", () => {});
    upstream.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    open: () => open.size,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) s.destroy();
      }),
  };
}

describe.skipIf(noSshd)("many hosts, one controller", () => {
  it("runs at most the handshake limit at once, over every host (the others wait for a slot)", async () => {
    let ready = 0;
    const seen: number[] = [];
    // at each new TCP connection: how many hosts had finished connecting
    const r = await relay(port, () => seen.push(ready));
    const previous = setSshHandshakeLimit(1);
    const hosts = Array.from({ length: 4 }, (_, i) =>
      testHost({ port: r.port, hostKey: fingerprintOf(port), name: `h${i}`, stateDir: "/tmp" }),
    );
    try {
      await Promise.all(
        hosts.map(async (h) => {
          await h.ready();
          ready++;
        }),
      );
      // one at a time: each handshake began after the one before had finished
      expect(seen).toEqual([0, 1, 2, 3]);
      expect(hosts.every((h) => h.connected)).toBe(true);
      expect(sshHandshakesActive()).toBe(0);
    } finally {
      setSshHandshakeLimit(previous);
      await Promise.all(hosts.map((h) => h.close()));
      await r.close();
    }
  });

  it("refuses a handshake limit that is not a whole number of at least 1", () => {
    expect(() => setSshHandshakeLimit(0)).toThrow(HostError);
    expect(() => setSshHandshakeLimit(1.5)).toThrow(/at least 1/);
  });

  describe("a server without the sftp subsystem", () => {
    const sandbox = tempDir("atomkit-ssh-nosftp-");
    let sshd: ChildProcess | undefined;
    afterAll(async () => {
      sshd?.kill("SIGKILL");
      await (await sandbox).cleanup();
    });

    it("the link whose setup failed after the handshake is closed, not left open", async () => {
      const { dir } = await sandbox;
      const p = await freePort();
      const key = `${stateRoot}/sshd-${port}`;
      // the testbed's host key and authorized keys; no Subsystem line: opening SFTP fails
      await writeFile(
        `${dir}/sshd_config`,
        [
          `ListenAddress 127.0.0.1:${p}`,
          `HostKey ${key}/ssh_host_ed25519_key`,
          `AuthorizedKeysFile ${key}/authorized_keys`,
          "PermitRootLogin prohibit-password",
          "PasswordAuthentication no",
          "KbdInteractiveAuthentication no",
          "UsePAM no",
          "StrictModes no",
          "UseDNS no",
          `PidFile ${dir}/sshd.pid`,
          "",
        ].join("\n"),
      );
      sshd = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", `${dir}/sshd_config`], { stdio: "ignore" });
      await waitFor(() => {
        try {
          return readFileSync(`${dir}/sshd.pid`, "utf8").trim() !== "";
        } catch {
          return false;
        }
      });
      const r = await relay(p);
      // no stateDir: the first link asks the server (over SFTP) for the remote home directory
      const h = testHost({ port: r.port, hostKey: fingerprintOf(port), reconnect: { retries: 0 } });
      try {
        const error = await h.ready().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(HostError);
        expect((error as HostError).message).toMatch(/cannot open an SFTP session/);
        expect(h.connected).toBe(false);
        await waitFor(() => r.open() === 0);
      } finally {
        await h.close();
        await r.close();
      }
    });
  });
});

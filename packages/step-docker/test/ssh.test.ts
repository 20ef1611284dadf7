// The same steps on a remote machine: the step's host is an sshHost (@atomkit/step-ssh) and the daemon's
// socket is reached over that host's one SSH connection (Host.connect({ path })). The sshd runs on this
// machine, so the containers land on the testbed's dockerd.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atom, errorReason, type Host, type HostErrorReason, run, validateParams } from "@atomkit/core";
import { type SshHost, type SshHostOptions, sshHost } from "@atomkit/step-ssh";
import { describeStepContract, serviceMissing, testbedEnv } from "@atomkit/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureImage, stopContainer, swapContainer } from "../src/index";
import {
  answer,
  containers,
  docker,
  filePrefix,
  freePort,
  HEALTHY_MS,
  httpd,
  noDocker,
  picture,
  removeAll,
  SOCKET,
  startByHand,
  uniqueName,
  V1,
  V2,
} from "./_fixtures";

const ssh = testbedEnv("sshd.env");
const SSH_HOST = ssh.ATOMKIT_SSH_HOST ?? "127.0.0.1";
const SSH_PORT = Number(ssh.ATOMKIT_SSH_PORT ?? 2222);
const KEY = ssh.ATOMKIT_SSH_KEY ?? "/tmp/atomkit-testbed/client/id_ed25519";
const KNOWN_HOSTS = ssh.ATOMKIT_SSH_KNOWN_HOSTS ?? "/tmp/atomkit-testbed/known_hosts";

async function sshdAnswers(): Promise<boolean> {
  if (!existsSync(KEY) || !existsSync(KNOWN_HOSTS)) return false;
  return new Promise((resolve) => {
    const s = connect(SSH_PORT, SSH_HOST);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

const noSshd = serviceMissing(
  "sshd",
  await sshdAnswers(),
  "start it with: bash scripts/testbed/sshd.sh start 2222",
);

const hostOptions = (extra: Partial<SshHostOptions> = {}): SshHostOptions => ({
  host: SSH_HOST,
  port: SSH_PORT,
  username: ssh.ATOMKIT_SSH_USER ?? "root",
  privateKeyPath: KEY,
  knownHosts: KNOWN_HOSTS,
  ...extra,
});

// reaching the daemon over SSH takes seconds on a loaded box; the cases that must fail set their own
const daemon = { socketPath: SOCKET, waitMs: HEALTHY_MS };

const PREFIX = filePrefix("ssh");

/** The HostError reason behind a run's error (the step's error wraps the transport's). */
function reasonOf(error: unknown): HostErrorReason | undefined {
  for (let e = error; e; e = (e as { cause?: unknown }).cause) {
    const reason = errorReason(e);
    if (reason) return reason;
  }
  return undefined;
}

/** Established TCP connections of this process to the sshd's port, read from /proc (Linux). */
function sshConnections(): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync("/proc/self/fd")) {
    const m = /^socket:\[(\d+)\]$/.exec(safeReadlink(`/proc/self/fd/${fd}`));
    if (m?.[1]) inodes.add(m[1]);
  }
  const port = SSH_PORT.toString(16).toUpperCase().padStart(4, "0");
  let n = 0;
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[2] remote address:port, f[3] state (01 = ESTABLISHED), f[9] inode
      if (f[2]?.endsWith(`:${port}`) && f[3] === "01" && inodes.has(f[9] ?? "")) n++;
    }
  }
  return n;
}

function safeReadlink(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return ""; // the fd closed while listing
  }
}

let stateDir = "";
const opened: SshHost[] = [];
/** A fresh sshHost (one SSH connection), closed after the test. */
const remote = (extra: Partial<SshHostOptions> = {}): SshHost => {
  const h = sshHost(hostOptions({ stateDir, ...extra }));
  opened.push(h);
  return h;
};

describe.skipIf(noDocker || noSshd)(
  "docker steps on an sshHost (the daemon through Host.connect({ path }))",
  () => {
    beforeAll(async () => {
      stateDir = await mkdtemp(join(tmpdir(), "atk-docker-ssh-"));
    });
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((h) => h.close()));
    });
    afterAll(async () => {
      await removeAll(PREFIX);
      await rm(stateDir, { recursive: true, force: true, maxRetries: 10 });
    });

    const v2 = (name: string, port: number, extra: Record<string, unknown> = {}) =>
      swapContainer({
        docker: daemon,
        name,
        image: V2,
        cmd: httpd(port),
        init: true,
        stopTimeoutMs: 1000,
        health: { http: { port, expect: { body: "v2" } }, timeoutMs: HEALTHY_MS },
        ...extra,
      });

    describeStepContract({
      name: "docker.swap on an sshHost (contract)",
      async setup() {
        const name = uniqueName(PREFIX);
        const port = await freePort();
        const flags = await mkdtemp(join(tmpdir(), "atk-flags-"));
        await startByHand(name, V1, port);
        const host = remote();
        return {
          host,
          // a flag file makes the new container exit at once: apply fails after changing things
          step: () =>
            v2(name, port, {
              cmd: [
                "sh",
                "-c",
                'test -e /flags/broken && exit 3; exec httpd -f -p "127.0.0.1:$1" -h /www',
                "sh",
                String(port),
              ],
              mounts: [{ source: flags, target: "/flags", readOnly: true }],
            }),
          snapshot: () => picture(name, port),
          breakApply: () => writeFile(join(flags, "broken"), "x"),
          cleanup: async () => {
            await host.close();
            await removeAll(name);
            await rm(flags, { recursive: true, force: true, maxRetries: 10 });
          },
        };
      },
    });

    it("v1 → v2 commits and a broken v2 rolls back, over ONE SSH connection that reaches the daemon's socket", async () => {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      await startByHand(name, V1, port);
      const ssh = remote();
      // every stream the steps open on the host is seen here: the daemon's socket and the health checks
      const streams: unknown[] = [];
      const host = new Proxy(ssh, {
        get(target, key) {
          if (key !== "connect") return Reflect.get(target, key, target);
          return (to: Parameters<Host["connect"]>[0], options?: Parameters<Host["connect"]>[1]) => {
            streams.push(to);
            return target.connect(to, options);
          };
        },
      });
      await ssh.ready();
      expect(sshConnections()).toBe(1);
      // the count sees a second connection when there is one (the old docker transport opened its own)
      const other = remote();
      await other.ready();
      expect(sshConnections()).toBe(2);
      await other.close();

      const ok = await run(atom("release", { steps: [v2(name, port)] }), { host, lock: false });
      expect(ok.status, ok.error?.message).toBe("committed");
      expect(await answer(port)).toBe("atomkit-test busybox v2");
      const before = await containers(name);
      const broken = v2(name, port, {
        image: V1,
        cmd: ["sleep", "60"],
        health: { http: { port }, timeoutMs: 1500 },
      });
      const bad = await run(atom("release", { steps: [broken] }), { host, lock: false, backoffMs: 1 });
      expect(bad.status, bad.error?.message).toBe("rolled-back");
      expect(bad.steps[0]).toMatchObject({ status: "undone", verified: true });
      expect(await answer(port)).toBe("atomkit-test busybox v2");
      expect(await containers(name)).toEqual(before);

      // the Docker API went through the host (no socket, no SSH link of its own), on its one connection
      expect(streams).toContainEqual({ path: SOCKET });
      expect(sshConnections()).toBe(1);
    });

    it("the old SSH fields of `docker` are refused, naming the replacement, before anything runs", async () => {
      const step = stopContainer({
        docker: { protocol: "ssh", host: SSH_HOST, username: "root" } as never,
        name: "atk-nothing",
      });
      const r = await validateParams(step);
      expect(r.issues?.[0]).toMatchObject({ path: "docker.protocol" });
      expect(r.issues?.[0]?.message).toContain("sshHost(");
      // an inline key given the old way is still kept out of the trail and logs
      expect(step.definition.secret).toContain("docker.sshOptions.privateKey");
    });

    it("a host key the host refuses fails at once as HOST_KEY (not waited out like a restarting daemon)", async () => {
      const empty = join(stateDir, "empty_known_hosts");
      await writeFile(empty, "");
      const name = uniqueName(PREFIX);
      const port = await freePort();
      await startByHand(name, V1, port);
      const before = await containers(name);
      const started = Date.now();
      const r = await run(
        atom("x", { steps: [v2(name, port, { docker: { socketPath: SOCKET, waitMs: 600_000 } })] }),
        { host: remote({ knownHosts: empty, reconnect: { retries: 0 } }), lock: false },
      );
      expect(r.steps[0]?.status).toBe("failed-unchanged");
      expect(reasonOf(r.error)).toBe("HOST_KEY");
      expect(r.error?.message).toMatch(/ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}/);
      expect(Date.now() - started).toBeLessThan(600_000);
      expect(await containers(name)).toEqual(before);
    });

    it("no daemon at the socket path on the host: waits docker.waitMs, then names the socket and the host", async () => {
      const missing = join(stateDir, "no-docker.sock");
      const host = remote();
      const r = await run(
        atom("x", {
          steps: [v2(uniqueName(PREFIX), await freePort(), { docker: { socketPath: missing, waitMs: 300 } })],
        }),
        { host, lock: false },
      );
      expect(r.steps[0]?.status).toBe("failed-unchanged");
      expect(r.error?.message).toContain(
        `the Docker daemon at unix://${missing} on ${host.name} is unreachable`,
      );
    });

    it("a script on an sshHost exits by itself once it closed the host (idle keep-alive channels included)", async () => {
      const child = spawn(process.execPath, [join(import.meta.dirname, "ssh-exit-child.mjs")], {
        env: { ...process.env, HOST_OPTIONS: JSON.stringify(hostOptions({ stateDir })), SOCKET },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
      });
      child.stderr.on("data", (d) => {
        out += d;
      });
      // however long the call takes on a loaded box, once it printed its answer there is nothing left to
      // do: the process must then exit by itself, and this wait starts only there
      const code = await new Promise((resolve) => {
        let t: NodeJS.Timeout | undefined;
        const printed = setInterval(() => {
          if (!out.includes("\n") || t) return;
          clearInterval(printed);
          t = setTimeout(() => {
            child.kill("SIGKILL");
            resolve("hung");
          }, 30_000);
        }, 20);
        child.once("exit", (c) => {
          clearInterval(printed);
          clearTimeout(t);
          resolve(c);
        });
      });
      expect([code, out.trim()]).toEqual([0, '{"current":null}']);
    });

    it("docker.image streams an archive to the daemon through the host", async () => {
      const ref = `atomkit-test/step-docker-ssh-${process.pid}:1`;
      const file = join(stateDir, "img.tar");
      const [repo, tag] = ref.split(":") as [string, string];
      await docker.getImage(V1).tag({ repo, tag });
      const { pipeline } = await import("node:stream/promises");
      const { createWriteStream } = await import("node:fs");
      await pipeline(await docker.getImage(ref).get(), createWriteStream(file));
      await docker.getImage(ref).remove();
      try {
        const r = await run(atom("x", { steps: [ensureImage({ docker: daemon, image: ref, load: file })] }), {
          host: remote(),
          lock: false,
        });
        expect(r.status, r.error?.message).toBe("committed");
        expect((await docker.getImage(ref).inspect()).Id).toBe((await docker.getImage(V1).inspect()).Id);
      } finally {
        await docker
          .getImage(ref)
          .remove()
          .catch(() => {});
      }
    });
  },
);

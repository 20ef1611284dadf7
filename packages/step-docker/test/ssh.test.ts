// The same steps against a Docker daemon reached over SSH (`docker system dial-stdio` on the sshd's
// machine, which here is this one: the containers land on the testbed's dockerd).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atom, errorReason, type HostErrorReason, localHost, memoryTrail, run } from "@atomkit/core";
import { describeStepContract, serviceMissing, testbedEnv } from "@atomkit/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeDockerConnections, type DockerSshConnection, ensureImage, swapContainer } from "../src/index";
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

const viaSsh = (sshOptions: DockerSshConnection["sshOptions"] = {}): DockerSshConnection => ({
  protocol: "ssh",
  host: SSH_HOST,
  port: SSH_PORT,
  username: ssh.ATOMKIT_SSH_USER ?? "root",
  sshOptions: { privateKeyPath: KEY, knownHosts: KNOWN_HOSTS, ...sshOptions },
  // reaching the daemon over SSH takes seconds on a loaded box; the cases that must fail set their own
  waitMs: HEALTHY_MS,
});

const PREFIX = filePrefix("ssh");

/** The HostError reason behind a run's error (the step's error wraps the transport's). */
function reasonOf(error: unknown): HostErrorReason | undefined {
  for (let e = error; e; e = (e as { cause?: unknown }).cause) {
    const reason = errorReason(e);
    if (reason) return reason;
  }
  return undefined;
}
let stateDir = "";
// the daemon is remote (over SSH); health checks go through the step's host, here this machine
const host = () => localHost({ stateDir });

describe.skipIf(noDocker || noSshd)("docker steps over SSH (docker system dial-stdio)", () => {
  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "atk-docker-ssh-"));
  });
  afterAll(async () => {
    await removeAll(PREFIX);
    closeDockerConnections();
    await rm(stateDir, { recursive: true, force: true, maxRetries: 10 });
  });

  const v2 = (name: string, port: number, extra: Record<string, unknown> = {}) =>
    swapContainer({
      docker: viaSsh(),
      name,
      image: V2,
      cmd: httpd(port),
      init: true,
      stopTimeoutMs: 1000,
      health: { http: { port, expect: { body: "v2" } }, timeoutMs: HEALTHY_MS },
      ...extra,
    });

  describeStepContract({
    name: "docker.swap over SSH (contract)",
    async setup() {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      const flags = await mkdtemp(join(tmpdir(), "atk-flags-"));
      await startByHand(name, V1, port);
      return {
        host: host(),
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
          await removeAll(name);
          await rm(flags, { recursive: true, force: true, maxRetries: 10 });
        },
      };
    },
  });

  it("v1 → v2 commits over SSH; a broken v2 rolls back to v1", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    await startByHand(name, V1, port);
    const ok = await run(atom("release", { steps: [v2(name, port)] }), { host: host(), lock: false });
    expect(ok.status, ok.error?.message).toBe("committed");
    expect(await answer(port)).toBe("atomkit-test busybox v2");
    const before = await containers(name);
    const broken = v2(name, port, {
      image: V1,
      cmd: ["sleep", "60"],
      health: { http: { port }, timeoutMs: 1500 },
    });
    const bad = await run(atom("release", { steps: [broken] }), { host: host(), lock: false, backoffMs: 1 });
    expect(bad.status, bad.error?.message).toBe("rolled-back");
    expect(bad.steps[0]).toMatchObject({ status: "undone", verified: true });
    expect(await answer(port)).toBe("atomkit-test busybox v2");
    expect(await containers(name)).toEqual(before);
  });

  it("an inline private key works and never reaches the trail", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    await startByHand(name, V1, port);
    const privateKey = await readFile(KEY, "utf8");
    const trail = memoryTrail();
    const step = v2(name, port, { docker: viaSsh({ privateKey, privateKeyPath: undefined }) });
    const r = await run(atom("release", { steps: [step] }), { host: host(), trail, lock: false });
    expect(r.status, r.error?.message).toBe("committed");
    const text = JSON.stringify([...trail.records.values()]);
    const keyBody = privateKey.split("\n")[1]!;
    expect(text).not.toContain(keyBody);
    expect(text).toContain(`"username":"root"`);
  });

  it("an unknown or changed host key is refused, showing the fingerprint; a pinned key works", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    await startByHand(name, V1, port);
    const before = await containers(name);
    const empty = join(stateDir, "empty_known_hosts");
    await writeFile(empty, "");
    const line = (await readFile(KNOWN_HOSTS, "utf8"))
      .split("\n")
      .find((l) => l.startsWith(`[${SSH_HOST}]:${SSH_PORT} `));
    const hostKey = line!.split(" ").slice(1, 3).join(" ");
    const otherKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBl0Yk1m2Y3mQb0+oZ3X0O8kZ0fQn6Yz1m6Xbq8o4sJ2";
    const changed = join(stateDir, "changed_known_hosts");
    await writeFile(changed, `[${SSH_HOST}]:${SSH_PORT} ${otherKey}\n`);

    for (const [sshOptions, text] of [
      [{ knownHosts: empty }, "is unknown"],
      [{ knownHosts: changed }, "it changed"],
      [{ hostKey: otherKey }, "not the pinned one"],
    ] as const) {
      const r = await run(atom("x", { steps: [v2(name, port, { docker: viaSsh(sshOptions) })] }), {
        host: host(),
        lock: false,
      });
      expect(r.steps[0]?.status, text).toBe("failed-unchanged");
      expect(r.error?.message).toContain(text);
      expect(r.error?.message).toMatch(/ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}/);
      expect(reasonOf(r.error), text).toBe("HOST_KEY");
    }
    expect(await containers(name)).toEqual(before);
    const pinned = await run(atom("x", { steps: [v2(name, port, { docker: viaSsh({ hostKey }) })] }), {
      host: host(),
      lock: false,
    });
    expect(pinned.status, pinned.error?.message).toBe("committed");
  });

  it("a revoked host key is refused as HOST_KEY", async () => {
    const line = (await readFile(KNOWN_HOSTS, "utf8"))
      .split("\n")
      .find((l) => l.startsWith(`[${SSH_HOST}]:${SSH_PORT} `))!;
    const revoked = join(stateDir, "revoked_known_hosts");
    await writeFile(revoked, `${line}\n@revoked ${line}\n`);
    const r = await run(
      atom("x", {
        steps: [v2(uniqueName(PREFIX), await freePort(), { docker: viaSsh({ knownHosts: revoked }) })],
      }),
      { host: host(), lock: false },
    );
    expect(r.steps[0]?.status).toBe("failed-unchanged");
    expect(r.error?.message).toContain("@revoked");
    expect(reasonOf(r.error)).toBe("HOST_KEY");
  });

  it("refused credentials are AUTH, at once (not retried for waitMs); an unreachable sshd is CONNECTION", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    // no key, no agent: a password the server refuses
    const refused = {
      ...viaSsh({ password: "not-the-password", privateKeyPath: undefined }),
      waitMs: 60_000,
    };
    const started = Date.now();
    const auth = await run(atom("x", { steps: [v2(name, port, { docker: refused })] }), {
      host: host(),
      lock: false,
    });
    expect(auth.steps[0]?.status).toBe("failed-unchanged");
    expect(reasonOf(auth.error)).toBe("AUTH");
    expect(auth.error?.message).toContain(
      `the SSH server at ssh://root@${SSH_HOST}:${SSH_PORT} refused the credentials`,
    );
    expect(Date.now() - started).toBeLessThan(60_000); // not waited out like an unreachable daemon

    const noKey = await run(
      atom("x", {
        steps: [v2(name, port, { docker: viaSsh({ privateKeyPath: join(stateDir, "no-such-key") }) })],
      }),
      { host: host(), lock: false },
    );
    expect(reasonOf(noKey.error)).toBe("ENOENT");
    expect(noKey.error?.message).toContain("cannot read the SSH key");

    const closed = await freePort(); // nothing listens there
    const down = await run(
      atom("x", { steps: [v2(name, port, { docker: { ...viaSsh(), port: closed, waitMs: 300 } })] }),
      { host: host(), lock: false },
    );
    expect(down.steps[0]?.status).toBe("failed-unchanged");
    expect(reasonOf(down.error)).toBe("CONNECTION");
    expect(down.error?.message).toContain(
      `cannot reach the Docker daemon at ssh://root@${SSH_HOST}:${closed}`,
    );
  });

  it("a script using the SSH transport neither exits early nor hangs on the idle connection", async () => {
    const child = spawn(process.execPath, [join(import.meta.dirname, "ssh-exit-child.mjs")], {
      env: { ...process.env, CONN: JSON.stringify(viaSsh()) },
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

  it("docker.image streams an archive to the remote daemon", async () => {
    const ref = `atomkit-test/step-docker-ssh-${process.pid}:1`;
    const file = join(stateDir, "img.tar");
    const [repo, tag] = ref.split(":") as [string, string];
    await docker.getImage(V1).tag({ repo, tag });
    const { pipeline } = await import("node:stream/promises");
    const { createWriteStream } = await import("node:fs");
    await pipeline(await docker.getImage(ref).get(), createWriteStream(file));
    await docker.getImage(ref).remove();
    try {
      const r = await run(atom("x", { steps: [ensureImage({ docker: viaSsh(), image: ref, load: file })] }), {
        host: host(),
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
});

// The contract suite of kv.set on a real remote host: an sshHost to the testbed's sshd (which runs on
// this machine, so a local temp dir is a directory on the host too). Observe, apply, undo and verify go
// through SFTP and exec; breakApply drops the link for real once the rewritten file has landed. Without
// the testbed this suite skips with a loud reason, and under CI=true it fails (testkit's serviceMissing).
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HostError } from "@atomkit/core";
import { type SshHost, sshHost } from "@atomkit/step-ssh";
import {
  describeStepContract,
  PATIENCE_MS,
  serviceMissing,
  snapshotTree,
  testbedEnv,
} from "@atomkit/testkit";
import { afterAll, describe } from "vitest";
import { setKey } from "../src/index";

const env = testbedEnv("sshd.env");
const port = Number((env.ATOMKIT_SSH_PORTS ?? env.ATOMKIT_SSH_PORT ?? "").split(/\s+/)[0]);
const noSshd = serviceMissing(
  "sshd",
  port > 0 && existsSync(env.ATOMKIT_SSH_KEY ?? "") && existsSync(env.ATOMKIT_SSH_KNOWN_HOSTS ?? ""),
  "run `bash scripts/testbed/sshd.sh start 2222 2223 2224 2225` (as root)",
);

const kv = (data: Record<string, string>) => `${JSON.stringify(data, null, 2)}\n`;

/**
 * `host` with its own stateDir, whose next writeFile (once armed) lands and then loses the link: the
 * server side of the session is killed, as a dropped connection would be while the reply is on its way.
 * Check and rollback then run over a new connection.
 */
function droppingAfterWrite(host: SshHost, stateDir: string) {
  let armed = false;
  let session = 0;
  const writeFileThenDrop: SshHost["writeFile"] = async (...args) => {
    await host.writeFile(...args);
    if (!armed) return;
    armed = false;
    process.kill(session, "SIGKILL");
    const end = Date.now() + PATIENCE_MS;
    while (host.connected && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    throw new HostError("CONNECTION", "writeFile: the SSH connection dropped (session killed by the test)", {
      host: host.name,
    });
  };
  return {
    host: Object.create(host, {
      stateDir: { value: stateDir },
      writeFile: { value: writeFileThenDrop },
    }) as SshHost,
    arm: async () => {
      // the remote shell's parent is the session's `sshd: user@notty` process
      session = Number((await host.exec(["sh", "-c", "echo $PPID"])).stdout.trim());
      armed = true;
    },
  };
}

describe.skipIf(noSshd)("kv.set over SSH", () => {
  const ssh = sshHost({
    host: env.ATOMKIT_SSH_HOST ?? "127.0.0.1",
    port,
    username: env.ATOMKIT_SSH_USER ?? "root",
    privateKeyPath: env.ATOMKIT_SSH_KEY ?? "",
    knownHosts: env.ATOMKIT_SSH_KNOWN_HOSTS ?? "",
    reconnect: { retries: 3, backoffMs: 100 },
  });
  afterAll(() => ssh.close());

  for (const existing of [true, false]) {
    describeStepContract({
      name: `kv.set over SSH ${existing ? "on an existing file (other keys kept)" : "creating the file"}`,
      idempotent: true,
      async setup() {
        const root = await mkdtemp(join(tmpdir(), "atomkit-kv-ssh-"));
        // a hostile directory name: every path reaches the host as an SFTP path or argv word
        const data = join(root, "data $(x) it's");
        await mkdir(data);
        const file = join(data, "flags.json");
        if (existing) await writeFile(file, kv({ mode: "blue", checkout: "off" }), { mode: 0o640 });
        const drop = droppingAfterWrite(ssh, join(root, "state"));
        return {
          host: drop.host,
          step: () => setKey({ file, key: "checkout", value: "on" }),
          snapshot: () => snapshotTree(data),
          breakApply: drop.arm,
          cleanup: () => rm(root, { recursive: true, force: true, maxRetries: 10 }),
        };
      },
    });
  }
});

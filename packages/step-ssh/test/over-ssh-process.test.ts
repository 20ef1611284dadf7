// The contract suites of @atomkit/step-process over a real SSH connection: processes are started,
// stopped and health-checked on the host through exec channels and direct-tcpip (host.connect).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startProcess, stopProcess } from "@atomkit/step-process";
import { describeStepContract, freePort, PATIENCE_MS } from "@atomkit/testkit";
import { afterAll, describe } from "vitest";
import type { SshHost } from "../src/index";
import { cutLink, noSshd, tempDir, testHost, withStateDir } from "./_testbed";

const SERVER = fileURLToPath(new URL("./fixtures/server.mjs", import.meta.url));
const NODE = process.execPath;

describe.skipIf(noSshd)("step-process over SSH", () => {
  const ssh = testHost();
  afterAll(() => ssh.close());

  describeStepContract({
    name: "process.start over SSH (health over a direct-tcpip channel)",
    idempotent: true,
    async setup() {
      const sb = await sandbox(ssh);
      const port = await freePort();
      const pidFile = join(sb.dir, "app.pid");
      const broken = join(sb.dir, "broken");
      return {
        host: sb.host,
        step: () =>
          startProcess({
            command: sb.server(port, `--unhealthy-if=${broken}`),
            cwd: sb.dir,
            pidFile,
            health: {
              http: { port, path: "/health" },
              // generous when it should pass (a loaded box), short when it is sure to fail
              timeoutMs: existsSync(broken) ? 1_000 : PATIENCE_MS,
              intervalMs: 50,
            },
            graceMs: 2_000,
          }),
        snapshot: async () => ({
          pidFile: existsSync(pidFile),
          answers: await answers(port),
          processes: (await pidsWith(sb.tag)).length,
        }),
        // real partial failure: the process starts on the host, then never passes its health check
        breakApply: () => writeFile(broken, ""),
        cleanup: sb.cleanup,
      };
    },
  });

  describeStepContract({
    name: "process.stop over SSH (undo restarts it from what observe recorded)",
    idempotent: true,
    async setup() {
      const sb = await sandbox(ssh);
      const port = await freePort();
      const pidFile = join(sb.dir, "app.pid");
      await sb.spawnServer(port, pidFile);
      // the signal is sent, then the link drops before the reply comes back
      const cut = cutLink(sb.host, "exec", "after", 0, ([argv]) => (argv as string[])[0] === "kill");
      return {
        host: cut.host,
        step: () =>
          stopProcess({
            pidFile,
            graceMs: 2_000,
            health: { http: { port, path: "/health" }, timeoutMs: PATIENCE_MS },
          }),
        snapshot: async () => ({ answers: await answers(port), processes: (await pidsWith(sb.tag)).length }),
        breakApply: cut.arm,
        cleanup: sb.cleanup,
      };
    },
  });
});

// --- helpers: the host is this machine, so the test can look at its processes directly ---

async function sandbox(ssh: SshHost) {
  const t = await tempDir("atomkit-ssh-process-");
  const tag = `atomkit-ssh-test-${randomBytes(6).toString("hex")}`;
  return {
    ...t,
    tag,
    host: withStateDir(ssh, join(t.dir, ".state")),
    server: (port: number, ...flags: string[]) => [NODE, SERVER, `--port=${port}`, `--tag=${tag}`, ...flags],
    async spawnServer(port: number, pidFile: string) {
      const fd = openSync(join(t.dir, "server.log"), "a");
      const child = spawn(NODE, [SERVER, `--port=${port}`, `--tag=${tag}`], {
        cwd: t.dir,
        detached: true,
        stdio: ["ignore", fd, fd],
        // as an init script starts it: from a shell that `cd`ed there (PWD: where it was started)
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", PWD: t.dir },
      });
      closeSync(fd);
      child.unref();
      await writeFile(pidFile, `${child.pid}\n`);
      const end = Date.now() + PATIENCE_MS;
      while (!(await answers(port))) {
        if (Date.now() > end || child.exitCode !== null) throw new Error("test server did not start");
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async cleanup() {
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
    },
  };
}

async function answers(port: number): Promise<boolean> {
  try {
    // refused at once when nothing listens; the timeout only cuts a server that accepted and hangs
    const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(30_000) });
    return r.status > 0;
  } catch {
    return false;
  }
}

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

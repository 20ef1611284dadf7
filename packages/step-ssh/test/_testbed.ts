// Settings of the real sshd instances started by scripts/testbed/sshd.sh, and helpers shared by the tests.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HostError } from "@atomkit/core";
import { PATIENCE_MS, serviceMissing, testbedEnv } from "@atomkit/testkit";
import { type SshHost, type SshHostOptions, sshHost } from "../src/index";

export const env = testbedEnv("sshd.env");
export const ports = (env.ATOMKIT_SSH_PORTS ?? env.ATOMKIT_SSH_PORT ?? "")
  .split(/\s+/)
  .filter(Boolean)
  .map(Number);
export const sshHostAddress = env.ATOMKIT_SSH_HOST ?? "127.0.0.1";
export const keyPath = env.ATOMKIT_SSH_KEY ?? "";
export const knownHostsPath = env.ATOMKIT_SSH_KNOWN_HOSTS ?? "";

/** True when the suite must skip (off CI, no sshd); throws under CI=true. */
export const noSshd = serviceMissing(
  "sshd",
  ports.length > 0 && existsSync(keyPath) && existsSync(knownHostsPath),
  "run `bash scripts/testbed/sshd.sh start 2222 2223 2224 2225` (as root)",
);

export const port = ports[0] ?? 2222;

/** An sshHost on a testbed port, verifying the host key against the testbed's known_hosts. */
export function testHost(extra: Partial<SshHostOptions> = {}, onPort = port): SshHost {
  return sshHost({
    host: sshHostAddress,
    port: onPort,
    username: env.ATOMKIT_SSH_USER ?? "root",
    privateKeyPath: keyPath,
    knownHosts: knownHostsPath,
    reconnect: { retries: 3, backoffMs: 100 },
    ...extra,
  });
}

/** sshd runs on this machine, so a local temp dir is also a directory on the host. */
export async function tempDir(
  prefix = "atomkit-ssh-",
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true, maxRetries: 10 }) };
}

/** The pid of the server-side sshd process serving `host`'s current connection. */
export async function sessionPid(host: SshHost): Promise<number> {
  // the remote shell execs sh, whose parent is the session's `sshd: user@notty` process; with input, so
  // it gets a session of its own (short commands run in the connection's command shell, whose child it
  // would be)
  const r = await host.exec(["sh", "-c", "echo $PPID"], { input: "" });
  return Number(r.stdout.trim());
}

/** Cuts the SSH connection from the server side, as a crashed link would. */
export function killSession(pid: number): void {
  process.kill(pid, "SIGKILL");
}

/** The pid of `parent`'s child process named `name` (e.g. the session's `sftp-server`). */
export function childProcess(parent: number, name: string): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split at the last ')'
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const ppid = Number(stat.slice(close + 2).split(" ")[1]);
    if (ppid === parent && comm === name) return Number(entry);
  }
  throw new Error(`no child process ${name} of ${parent}`);
}

export { PATIENCE_MS };

/** Waits until `fn()` holds, polling; fails after `ms` (long: only a hang waits it out on a loaded box). */
export async function waitFor(fn: () => boolean, ms = PATIENCE_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A TCP relay to a testbed sshd that counts the connections made through it, so "not retried" is a
 * count rather than a stopwatch (which a loaded box would fail). Pin the host key when connecting
 * through it: known_hosts names the sshd's own port.
 */
export async function countingRelay(
  target: number,
): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let count = 0;
  const open = new Set<{ destroy(): void }>();
  const server = createServer((client) => {
    count++;
    const upstream = tcpConnect(target, sshHostAddress);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on("close", () => open.delete(s));
    }
    client.pipe(upstream).pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) s.destroy();
      }),
  };
}

/** The same host and connection, with Atomkit's state in `stateDir` (a per-test sandbox). */
export function withStateDir(host: SshHost, stateDir: string): SshHost {
  return Object.create(host, { stateDir: { value: stateDir } }) as SshHost;
}

type CutOp = "rename" | "writeFile" | "mkdir" | "upload" | "exec";

/**
 * A real dropped link for `breakApply`: when armed, the chosen operation (after `skip` calls) lands
 * (`after`) or is never sent (`before`), then the server-side session is killed and the call fails
 * with reason CONNECTION, as when the link drops while the reply is on its way. Check and rollback then
 * run over a new connection.
 */
export function cutLink(
  host: SshHost,
  op: CutOp,
  when: "before" | "after",
  skip = 0,
  only: (args: unknown[]) => boolean = () => true,
) {
  const state = { armed: false, skip: 0, pid: 0 };
  const original = host[op] as (...args: unknown[]) => Promise<unknown>;
  const cut = async (...args: unknown[]) => {
    if (!state.armed || !only(args) || state.skip-- > 0) return original(...args);
    state.armed = false;
    if (when === "after") await original(...args);
    killSession(state.pid);
    const end = Date.now() + PATIENCE_MS;
    while (host.connected && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    throw new HostError(
      "CONNECTION",
      `${op} failed: the SSH connection dropped (session killed by the test)`,
      {
        host: host.name,
      },
    );
  };
  return {
    host: Object.create(host, { [op]: { value: cut } }) as SshHost,
    arm: async () => {
      state.pid = await sessionPid(host);
      state.skip = skip;
      state.armed = true;
    },
  };
}

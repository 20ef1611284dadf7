import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { atom, defineStep, fileTrail, type Host, HostError, run } from "@atomkit/core";
import { type SshHost, sshHost } from "@atomkit/step-ssh";
import { freePort, serviceMissing, testbedEnv } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { atomkit, makeProject } from "./_project";

// Issue #16 over the real test sshd (127.0.0.1, see /tmp/atomkit-testbed/sshd.env): a host whose key
// is not known and a closed port are refused with the documented exit codes, nothing run; and a link
// cut while a rollback observes is reconnected, the undo retried and verified.

const env = testbedEnv("sshd.env");
const address = env.ATOMKIT_SSH_HOST ?? "127.0.0.1";
const port = Number((env.ATOMKIT_SSH_PORTS ?? env.ATOMKIT_SSH_PORT ?? "").split(/\s+/)[0] || 0);
const key = env.ATOMKIT_SSH_KEY ?? "";
const knownHosts = env.ATOMKIT_SSH_KNOWN_HOSTS ?? "";
const noSshd = serviceMissing(
  "sshd",
  port > 0 && existsSync(key) && existsSync(knownHosts),
  "run `bash scripts/testbed/sshd.sh start 2222 2223 2224 2225` (as root)",
);

describe.skipIf(noSshd)("atomkit against hosts that refuse or are not there", () => {
  let p: Awaited<ReturnType<typeof makeProject>>;
  beforeEach(async () => {
    p = await makeProject("", ["step-ssh"]);
    await writeFile(join(p.dir, "empty_known_hosts"), "# no keys\n");
  });
  afterEach(() => p.cleanup());

  const deployFile = (hostOptions: string) => `
import { atom, defineStep, isNotFound } from "@atomkit/core";
import { defineConfig } from "@atomkit/cli";
import { sshHost } from "@atomkit/step-ssh";
const page = defineStep({
  kind: "test.page",
  params: (p: { path: string }) => p,
  observe: async (ctx, p) => { try { return (await ctx.host.readFile(p.path)).toString(); } catch (e) { if (isNotFound(e)) return null; throw e; } },
  apply: async (ctx, p) => ctx.host.writeFile(p.path, "v2"),
  undo: async (ctx, p) => ctx.host.rm(p.path, { force: true }),
});
export default defineConfig({
  hosts: { web: () => sshHost({ host: ${JSON.stringify(address)}, username: ${JSON.stringify(env.ATOMKIT_SSH_USER ?? "root")},
    privateKeyPath: ${JSON.stringify(key)}, stateDir: ${JSON.stringify(join(p.dir, "remote-state"))},
    reconnect: { retries: 1, backoffMs: 50 }, ${hostOptions} }) },
  atoms: { release: atom("release", { steps: [page({ path: ${JSON.stringify(join(p.www, "index.html"))} }, { name: "page" })] }) },
});
`;

  it("a host key not in known_hosts: exit 8, the key's fingerprint and the fix named, nothing run", async () => {
    await writeFile(
      join(p.dir, "atomkit.config.ts"),
      deployFile(`port: ${port}, knownHosts: ${JSON.stringify(join(p.dir, "empty_known_hosts"))}`),
    );
    const r = await atomkit(p.dir, ["run", "release"]);
    expect(r.code, r.stderr).toBe(8);
    expect(r.stderr).toMatch(/host key .*is unknown/);
    expect(r.stderr).toMatch(/SHA256:[A-Za-z0-9+/]{43}/);
    expect(r.stderr).toContain("ssh-keyscan");
    expect(r.stderr).not.toMatch(/unexpected error/);
    expect(existsSync(join(p.www, "index.html"))).toBe(false);
    expect(existsSync(join(p.dir, "remote-state"))).toBe(false);
  });

  it("a closed port: exit 7, the address named, nothing run", async () => {
    const closed = await freePort();
    await writeFile(
      join(p.dir, "atomkit.config.ts"),
      deployFile(`port: ${closed}, knownHosts: ${JSON.stringify(knownHosts)}`),
    );
    const r = await atomkit(p.dir, ["run", "release"]);
    expect(r.code, r.stderr).toBe(7);
    expect(r.stderr).toMatch(/ECONNREFUSED/);
    expect(r.stderr).toContain(`port ${closed}`);
    expect(r.stderr).not.toMatch(/unexpected error/);
    expect(existsSync(join(p.www, "index.html"))).toBe(false);
  });
});

describe.skipIf(noSshd)("a link cut while the rollback observes (real sshd)", () => {
  let p: Awaited<ReturnType<typeof makeProject>>;
  let host: SshHost;
  beforeEach(async () => {
    p = await makeProject();
    host = sshHost({
      host: address,
      port,
      username: env.ATOMKIT_SSH_USER ?? "root",
      privateKeyPath: key,
      knownHosts,
      stateDir: join(p.dir, "remote-state"),
      reconnect: { retries: 3, backoffMs: 100 },
    });
  });
  afterEach(async () => {
    await host.close();
    await p.cleanup();
  });

  const put = defineStep({
    kind: "test.put",
    params: (x: { path: string; content: string; fail?: boolean }) => x,
    observe: async (ctx, x) =>
      (await ctx.host.stat(x.path)) ? (await ctx.host.readFile(x.path)).toString("utf8") : null,
    apply: async (ctx, x) => {
      await ctx.host.writeFile(x.path, x.content);
      if (x.fail) throw new Error("health check failed");
    },
    undo: async (ctx, x, before) => {
      if (before === null) await ctx.host.rm(x.path, { force: true });
      else await ctx.host.writeFile(x.path, before);
    },
  });
  const release = () =>
    atom("rel", {
      steps: [
        put({ path: join(p.www, "a"), content: "a v2" }, { name: "a" }),
        put({ path: join(p.www, "b"), content: "b v2", fail: true }, { name: "b" }),
      ],
    });

  /** The server-side sshd process of the host's current connection: killing it cuts the link. */
  const sessionPid = async () => Number((await host.exec(["sh", "-c", "echo $PPID"])).stdout.trim());

  it("the session killed as the rollback starts: reconnected, every undo verified", async () => {
    await writeFile(join(p.www, "a"), "a v1");
    const pid = await sessionPid();
    const result = await run(release(), {
      host,
      trail: fileTrail({ dir: join(p.dir, "trails"), key: "ssh-test-passphrase" }),
      backoffMs: 10,
      onEvent: (e) => {
        if (e.type === "rollback:start") process.kill(pid, "SIGKILL");
      },
    });
    expect(result.status, result.error?.message).toBe("rolled-back");
    expect(result.steps.map((s) => [s.name, s.status, s.verified])).toEqual([
      ["a", "undone", true],
      ["b", "undone", true],
    ]);
    expect(await readFile(join(p.www, "a"), "utf8")).toBe("a v1");
    expect(existsSync(join(p.www, "b"))).toBe(false);
    expect(await sessionPid()).not.toBe(pid);
  });

  it("the observe before an undo fails with CONNECTION (the session killed under it): retried, verified", async () => {
    await writeFile(join(p.www, "a"), "a v1");
    // the first read after the rollback starts cuts the real link, then fails as a dropped call does
    const state = { armed: false, cut: 0 };
    const cutting = Object.create(host, {
      stat: {
        value: async (path: string) => {
          if (!state.armed) return host.stat(path);
          state.armed = false;
          state.cut++;
          process.kill(await sessionPid(), "SIGKILL");
          throw new HostError(
            "CONNECTION",
            `stat ${path} failed: the SSH connection dropped (session killed)`,
            {
              host: host.name,
            },
          );
        },
      },
    }) as Host;
    const result = await run(release(), {
      host: cutting,
      trail: fileTrail({ dir: join(p.dir, "trails"), key: "ssh-test-passphrase" }),
      backoffMs: 10,
      onEvent: (e) => {
        if (e.type === "rollback:start" || e.type === "step:undone") state.armed = true;
      },
    });
    expect(result.status, result.error?.message).toBe("rolled-back");
    expect(state.cut).toBe(2);
    expect(result.steps.every((s) => s.status === "undone" && s.verified)).toBe(true);
    expect(await readFile(join(p.www, "a"), "utf8")).toBe("a v1");
    expect(existsSync(join(p.www, "b"))).toBe(false);
  });
});

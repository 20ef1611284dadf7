import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { atomkit, linkedDir } from "./_project";

// A host is named by its key in the deploy file: two `localHost()` under `a` and `b` are two hosts in
// plan, run, the trail, leases, status and --host. A key equal to the host's own name (`local`)
// behaves as before; runs recorded under a host's own name stay reachable after its key changes.

let dir: string;
/** HOME for the CLI: localHost()'s default stateDir (~/.atomkit) lands in the temp project. */
let env: Record<string, string>;

const config = (hosts: string) => `import { atom, localHost } from "@atomkit/core";
import { defineConfig } from "@atomkit/cli";
import { writeFile } from "@atomkit/step-fs";
export default defineConfig({
  hosts: { ${hosts} },
  atoms: {
    release: (vars, { host }) =>
      atom("release", { steps: [writeFile({ path: \`\${process.cwd()}/www-\${host}.txt\`, content: \`release \${vars.v ?? "1"}\` }, { name: "page" })] }),
  },
});
`;

const json = (text: string) =>
  text
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

beforeEach(async () => {
  dir = await linkedDir("atomkit-host-keys-", ["core", "cli", "step-fs"]);
  env = { HOME: dir };
});
afterEach(() => rm(dir, { recursive: true, force: true, maxRetries: 10 }));

describe("hosts are named by their config key", () => {
  it("two localHost() under a and b: plan, run, trail, status and --host each see two hosts", async () => {
    await writeFile(join(dir, "atomkit.config.ts"), config("a: localHost(), b: localHost()"));

    const plan = await atomkit(dir, ["plan", "release", "--var", "v=1"], { env });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/^a plan of release/m);
    expect(plan.stdout).toMatch(/^b plan of release/m);

    // both at once: one fleet run, each host with its own lock (they share one stateDir)
    const both = await atomkit(dir, ["run", "release", "--var", "v=1"], { env });
    expect(both.code, both.stderr + both.stdout).toBe(0);
    expect(both.stdout).toMatch(/\[a\] ■ committed/);
    expect(both.stdout).toMatch(/\[b\] ■ committed/);
    const one = await atomkit(dir, ["run", "release", "--host", "a", "--var", "v=2"], { env });
    expect(one.code, one.stderr).toBe(0);
    expect(await readFile(join(dir, "www-a.txt"), "utf8")).toBe("release 2");
    expect(await readFile(join(dir, "www-b.txt"), "utf8")).toBe("release 1");

    const runs = json((await atomkit(dir, ["trail", "--json"], { env })).stdout);
    expect(runs.map((r) => r.host).sort()).toEqual(["a", "a", "b"]);
    const ofA = json((await atomkit(dir, ["trail", "--json", "--host", "a"], { env })).stdout);
    expect(ofA.map((r) => [r.host, (r.meta as { vars: { v: string } }).vars.v])).toEqual([
      ["a", "1"],
      ["a", "2"],
    ]);
    const table = await atomkit(dir, ["trail", "--host", "b"], { env });
    expect(table.stdout.trim().split("\n")).toHaveLength(2); // the header and b's run

    const status = json((await atomkit(dir, ["status", "--json"], { env })).stdout);
    expect(status.map((s) => [s.host, (s.live as Array<{ vars: { v: string } }>)[0]?.vars.v])).toEqual([
      ["a", "2"],
      ["b", "1"],
    ]);
    const statusA = await atomkit(dir, ["status", "--host", "a"], { env });
    expect(statusA.code, statusA.stderr).toBe(0);
    expect(statusA.stdout).toMatch(/^a\n {2}release +v=2 .*\n {2}.*as deployed; 1 earlier release/m);
    expect(statusA.stdout).not.toMatch(/^b$/m);

    // each host's lock is its own: nothing left held, and unlock names the host by its key
    const unlock = await atomkit(dir, ["unlock", "b"], { env });
    expect(unlock.stdout).toBe('no lock "deploy" on b\n');

    // rollback on a alone: a serves v=1 again, b is untouched
    const back = await atomkit(dir, ["rollback", "release", "--host", "a"], { env });
    expect(back.code, back.stderr + back.stdout).toBe(0);
    expect(await readFile(join(dir, "www-a.txt"), "utf8")).toBe("release 1");
    expect(await readFile(join(dir, "www-b.txt"), "utf8")).toBe("release 1");
  });

  it("a live lease of one key does not block the other, and names its host by key", async () => {
    await writeFile(join(dir, "atomkit.config.ts"), config("a: localHost(), b: localHost()"));
    const { localHost } = await import("@atomkit/core");
    const { acquireLease } = await import("@atomkit/core/kit");
    const { keyedHost } = await import("../src/keyed-host");
    const a = keyedHost("a", localHost({ stateDir: join(dir, ".atomkit") }));
    const lease = await a.lock("deploy", { owner: "someone@elsewhere" });
    try {
      expect(lease.info.host).toBe("a");
      const held = await atomkit(dir, ["unlock", "a"], { env });
      expect(held.stdout).toMatch(/^lock "deploy" on a is held by someone@elsewhere/);
      const blocked = await atomkit(dir, ["run", "release", "--host", "a"], { env });
      expect(blocked.code).toBe(5);
      const free = await atomkit(dir, ["run", "release", "--host", "b"], { env });
      expect(free.code, free.stderr).toBe(0);
      // the host's own lease (key "local" = its own name) is the file it always was
      const own = await acquireLease(localHost({ stateDir: join(dir, ".atomkit") }), "deploy", {
        owner: "x",
      });
      await own.release();
    } finally {
      await lease.release();
    }
  });

  it("runs recorded under a host's own name stay reachable when its key differs", async () => {
    // before: the key equals the host's own name ("local"), as most deploy files have it
    await writeFile(join(dir, "atomkit.config.ts"), config("local: localHost()"));
    const first = await atomkit(dir, ["run", "release", "--var", "v=1", "--json"], { env });
    expect(first.code, first.stderr).toBe(0);
    const [recorded] = json((await atomkit(dir, ["trail", "--json"], { env })).stdout);
    expect(recorded?.host).toBe("local");
    const runId = recorded!.runId as string;

    // the same machine now under another key: new runs are its key's, the old one is still found
    await writeFile(join(dir, "atomkit.config.ts"), config("web: localHost()"));
    const status = await atomkit(dir, ["status", "--host", "web"], { env });
    expect(status.stdout).toMatch(/^web\n {2}nothing deployed by Atomkit is live here/m);
    expect(status.stdout).toContain(
      '1 earlier run(s) are recorded as "local", its own name: atomkit status --host "local"',
    );
    const old = await atomkit(dir, ["status", "--host", "local"], { env });
    expect(old.stdout).toMatch(/^local\n {2}release +v=1/m);
    // undo of the old run: its host is found by the name it recorded
    const undo = await atomkit(dir, ["undo", runId], { env });
    expect(undo.code, undo.stderr + undo.stdout).toBe(0);
    await expect(readFile(join(dir, "www-local.txt"), "utf8")).rejects.toMatchObject({ code: "ENOENT" });
    const next = await atomkit(dir, ["run", "release", "--var", "v=3"], { env });
    expect(next.code, next.stderr).toBe(0);
    const hosts = json((await atomkit(dir, ["trail", "--json"], { env })).stdout).map((r) => r.host);
    expect(hosts).toEqual(["local", "local", "web"]);
  });
});

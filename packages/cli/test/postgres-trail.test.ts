import { randomBytes } from "node:crypto";
import { cp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { serviceMissing, testbedEnv } from "@atomkit/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { atomkit, makeProject, until } from "./_project";

// The CLI on a PostgreSQL trail (ATOMKIT_TRAIL_URL): what one project directory ran, another with only
// the database (and the hosts) lists, undoes and recovers; nothing is written to .atomkit/trails.
const PG_URL = testbedEnv("postgres.env").ATOMKIT_PG_URL;
const missing = serviceMissing(
  "PostgreSQL",
  !!PG_URL,
  "start it with `bash scripts/testbed/postgres.sh start`",
);
const KEY = randomBytes(32).toString("hex");

describe.skipIf(missing)("atomkit on a PostgreSQL trail", { timeout: 180_000 }, () => {
  let a: Awaited<ReturnType<typeof makeProject>>;
  let elsewhere: string;
  let env: Record<string, string>;
  beforeEach(async () => {
    a = await makeProject("", ["store-postgres"]);
    // a second checkout of the same project: what a CI runner that did not deploy has
    elsewhere = `${a.dir}-elsewhere`;
    await cp(a.dir, elsewhere, { recursive: true, verbatimSymlinks: true });
    env = {
      ATOMKIT_TRAIL_URL: `${PG_URL}?schema=cli_${randomBytes(5).toString("hex")}`,
      ATOMKIT_TRAIL_KEY: KEY,
    };
  });
  afterEach(async () => {
    await a.cleanup();
    await rm(elsewhere, { recursive: true, force: true });
  });

  it("runs there, and another checkout lists, reports and undoes the run with only the database", async () => {
    const r = await atomkit(a.dir, ["run", "release", "--var", "v=2"], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(a.www, "index.html"), "utf8")).toBe("v2");
    const runId = /run release (\S+) \(/.exec(r.stdout)?.[1];
    expect(runId, r.stdout).toBeTruthy();
    // nothing went to the file trail
    await expect(readFile(join(a.dir, ".atomkit", "trail.key"))).rejects.toThrow();

    const list = await atomkit(elsewhere, ["trail"], { env });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(runId!);
    expect((await atomkit(elsewhere, ["report", "--last", "-o", "-"], { env })).stdout).toMatch(/<html/);
    const undo = await atomkit(elsewhere, ["undo", runId!], { env });
    expect(undo.code, undo.stderr).toBe(0);
    await expect(readFile(join(a.www, "index.html"), "utf8")).rejects.toThrow();
    const status = await atomkit(a.dir, ["trail"], { env });
    expect(status.stdout).toMatch(/rolled-back/);

    const migrate = await atomkit(elsewhere, ["store", "migrate"], { env });
    expect(migrate.code, migrate.stderr).toBe(0);
    expect(migrate.stdout).toMatch(/version 1: nothing to migrate/);
  });

  it("a run killed mid-step in one checkout is refused a new deploy, and recovered from the other", async () => {
    let sent = false;
    const killed = await atomkit(a.dir, ["run", "release", "--var", "v=3", "--var", "hang=1"], {
      env,
      onStdout: (text, kill) => {
        if (sent || !text.includes("▸ page")) return;
        sent = true;
        void until(
          async () => (await readFile(join(a.www, "index.html"), "utf8").catch(() => "")) === "v3",
        ).then(() => kill("SIGKILL"));
      },
    });
    expect(killed.signal).toBe("SIGKILL");
    // the other checkout sees the unfinished run in the database: no deploy on top of it
    const again = await atomkit(elsewhere, ["run", "release"], { env });
    expect(again.code).toBe(5);
    expect(again.stderr).toMatch(/has an unfinished run/);
    const rec = await atomkit(elsewhere, ["recover"], { env });
    expect(rec.code, rec.stderr).toBe(0);
    await expect(readFile(join(a.www, "index.html"), "utf8")).rejects.toThrow();
    await expect(readFile(join(a.www, "drain"), "utf8")).rejects.toThrow();
    expect((await atomkit(a.dir, ["trail"], { env })).stdout).toMatch(/rolled-back/);
  });

  it("without the trail key: a clear error before anything runs (exit 9)", async () => {
    const r = await atomkit(a.dir, ["run", "release"], { env: { ...env, ATOMKIT_TRAIL_KEY: "" } });
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(/no trail key for the PostgreSQL trail/);
    expect(r.stderr).toMatch(/ATOMKIT_TRAIL_KEY/);
    await expect(readFile(join(a.www, "index.html"), "utf8")).rejects.toThrow();
  });

  it("a URL whose package is missing, or that is not postgres://, names the fix", async () => {
    await rm(join(a.dir, "node_modules/@atomkit/store-postgres"));
    // pnpm's NODE_PATH (inherited from the test runner) would find the workspace's copy
    const r = await atomkit(a.dir, ["trail"], { env: { ...env, NODE_PATH: "" } });
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(/npm install --save-dev @atomkit\/store-postgres/);
    const bad = await atomkit(a.dir, ["trail"], { env: { ...env, ATOMKIT_TRAIL_URL: "mysql://u:pw@h/db" } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not a PostgreSQL URL/);
    expect(bad.stderr).not.toMatch(/pw@/);
  });
});

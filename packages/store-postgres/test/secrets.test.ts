import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atom, defineStep, localHost, run } from "@atomkit/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { postgresTrail } from "../src";
import { dropSchema, freshSchema, KEY, PG_URL, pgMissing, sql } from "./_pg";

const SECRET = "pw-9f8e7d6c5b4a-do-not-store";

// a kind with a secret param that also quotes it in its error: the trail masks both, and the database
// holds only what the file trail would
const login = defineStep({
  kind: "pgtest.login",
  params: (p: { user: string; password: string; fail?: boolean }) => p,
  secret: ["password"],
  describe: (p) => `log ${p.user} in`,
  async observe() {
    return { in: false };
  },
  async apply(_ctx, p) {
    if (p.fail) throw new Error(`login refused for ${p.user} with password ${p.password}`);
  },
  async undo() {},
});

describe.skipIf(pgMissing)("secrets and the PostgreSQL trail", () => {
  let schema: string;
  let dir: string;
  beforeEach(async () => {
    schema = freshSchema();
    dir = await mkdtemp(join(tmpdir(), "atomkit-pg-secret-"));
  });
  afterEach(async () => {
    await dropSchema(schema);
    await rm(dir, { recursive: true, force: true });
  });

  it("never reach the database: not in params, errors, meta, nor anywhere in a record", async () => {
    const trail = postgresTrail({ connectionString: PG_URL, schema, key: KEY });
    const host = localHost({ name: "web1", stateDir: join(dir, "state") });
    for (const fail of [false, true]) {
      await run(
        atom("login", { steps: [login({ user: "deploy", password: SECRET, fail }, { name: "login" })] }),
        {
          host,
          trail,
          meta: { note: `deployed with ${SECRET}` },
        },
      );
    }
    await trail.close();
    const { rows } = await sql(`SELECT body FROM "${schema}".records`);
    expect(rows.length).toBeGreaterThan(4);
    const all = rows.map((r) => r.body as string).join("\n");
    expect(all).toContain("login refused for deploy with password");
    expect(all).not.toContain(SECRET);
    // nor in the index or the lock holders' table
    const index = await sql(`SELECT * FROM "${schema}".runs`);
    const locks = await sql(`SELECT * FROM "${schema}".locks`);
    expect(JSON.stringify([index.rows, locks.rows])).not.toContain(SECRET);
  });

  it("the seal key never reaches the database, and a record forged there is refused", async () => {
    const trail = postgresTrail({ connectionString: PG_URL, schema, key: KEY });
    const host = localHost({ name: "web1", stateDir: join(dir, "state") });
    const r = await run(
      atom("login", { steps: [login({ user: "deploy", password: SECRET }, { name: "login" })] }),
      {
        host,
        trail,
      },
    );
    await trail.close();
    const dump = await sql(`SELECT body FROM "${schema}".records`);
    expect(JSON.stringify(dump.rows)).not.toContain(KEY);
    // someone with write access to the database (but not the key) turns the run into a rolled-back one
    await sql(
      `UPDATE "${schema}".records SET body = replace(body, '"status":"committed"', '"status":"rolled-back"') WHERE run_id = $1`,
      [r.runId],
    );
    const again = postgresTrail({ connectionString: PG_URL, schema, key: KEY });
    await expect(again.readRun(r.runId)).rejects.toThrow(/fails its integrity check/);
    expect((await again.listRuns()).map((x) => x.status)).toEqual(["corrupt"]);
    await again.close();
  });
});

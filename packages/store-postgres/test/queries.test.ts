import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { postgresTrail } from "../src";
import { dropSchema, freshSchema, KEY, PG_URL, pgMissing } from "./_pg";

// What the CLI asks (`atomkit trail`, status, rollback's plan) costs a few queries, not one per run:
// a controller in CI talks to a database a few milliseconds away.
describe.skipIf(pgMissing)("queries per listing", () => {
  const schema = freshSchema();
  afterEach(() => dropSchema(schema));

  it("lists 300 runs with a few queries, and again without reading the unchanged ones", async () => {
    const pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
    let queries = 0;
    const query = pool.query.bind(pool);
    pool.query = ((...args: Parameters<typeof query>) => {
      queries++;
      return query(...args);
    }) as typeof pool.query;
    const trail = postgresTrail({ pool, schema, key: KEY });
    const n = 300;
    for (let i = 0; i < n; i++) {
      const runId = `r${String(i).padStart(4, "0")}`;
      await trail.append(
        runId,
        [
          {
            t: "run",
            v: 2,
            runId,
            atom: "release",
            host: `h${i % 30}`,
            mode: "run",
            at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
            pid: 1,
            machine: "m",
            steps: [],
          },
          { t: "end", runId, status: "committed", at: new Date(Date.UTC(2026, 0, 1, 1)).toISOString() },
        ],
        { sync: true },
      );
    }
    // a second controller: nothing cached
    const other = postgresTrail({ pool, schema, key: KEY });
    queries = 0;
    expect(await other.listRuns()).toHaveLength(n);
    expect(queries).toBeLessThanOrEqual(4);
    queries = 0;
    expect(await other.listRuns({ host: "h7" })).toHaveLength(10);
    expect(queries).toBeLessThanOrEqual(3);
    await other.close();
    await trail.close();
    await pool.end();
  });
});

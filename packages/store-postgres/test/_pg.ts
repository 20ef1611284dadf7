import { randomBytes } from "node:crypto";
import { serviceMissing, testbedEnv } from "@atomkit/testkit";
import pg from "pg";

/** The test-bed PostgreSQL (scripts/testbed/postgres.sh), or undefined when it is not there (then skip). */
export const PG_URL = testbedEnv("postgres.env").ATOMKIT_PG_URL;

export const pgMissing = serviceMissing(
  "PostgreSQL",
  !!PG_URL && (await reachable(PG_URL)),
  "start it with `bash scripts/testbed/postgres.sh start` (as root)",
);

async function reachable(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await c.connect();
    await c.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

/** A fresh schema name per test: tests run side by side in one database. */
export const freshSchema = () => `t_${randomBytes(6).toString("hex")}`;

export async function sql(text: string, values: unknown[] = [], url = PG_URL!): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(text, values);
  } finally {
    await c.end();
  }
}

export const dropSchema = (schema: string) => sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);

export const KEY = "4d1c2a8f0e7b6d5c4b3a29180716f5e4d3c2b1a0f9e8d7c6b5a493827160f5e4";

import { createHash } from "node:crypto";
import { TrailError } from "@atomkit/core";
import type pg from "pg";

/**
 * The schema, one migration per version, applied in order and recorded in `<schema>.migrations`. A
 * migration only ever adds: a release of this package that needs a new shape adds a version, and an
 * older controller refuses a database that is newer than it knows (it could misread it).
 */
const MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: (s: string) => string }> = [
  {
    version: 1,
    name: "runs, records, locks",
    sql: (s) => `
      -- one row per run or fleet run: the index the CLI's queries use (never the truth: records are)
      CREATE TABLE ${s}.runs (
        id text PRIMARY KEY,
        kind text,                 -- 'run' | 'fleet', from the first record
        atom text,
        host text,
        fleet text,
        mode text,
        undo_of text,
        started_at text,           -- the first record's ISO time (sorts as text)
        status text NOT NULL,      -- 'unfinished' until an end record
        ended_at text,
        records integer NOT NULL   -- how many records: the next one's seq
      );
      -- every record as written (its mac, when sealed, covers exactly these bytes' content)
      CREATE TABLE ${s}.records (
        run_id text NOT NULL REFERENCES ${s}.runs (id) ON DELETE CASCADE,
        seq integer NOT NULL,
        body text NOT NULL,
        PRIMARY KEY (run_id, seq)
      );
      CREATE INDEX runs_host ON ${s}.runs (host, started_at);
      CREATE INDEX runs_atom_host ON ${s}.runs (atom, host, status, started_at);
      CREATE INDEX runs_unfinished ON ${s}.runs (started_at) WHERE status = 'unfinished';
      CREATE INDEX runs_fleet ON ${s}.runs (fleet) WHERE fleet IS NOT NULL;
      CREATE INDEX runs_undo_of ON ${s}.runs (undo_of) WHERE undo_of IS NOT NULL;
      -- who holds a store lock (the advisory lock is the lock; this only names its holder)
      CREATE TABLE ${s}.locks (
        name text PRIMARY KEY,
        owner text NOT NULL,
        note text,
        pid integer NOT NULL,
        machine text NOT NULL,
        backend integer NOT NULL,
        since timestamptz NOT NULL DEFAULT now()
      );`,
  },
];

/** The trail schema version this release writes; a schema migrated further by a newer release is refused. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** The schema name, checked: it is pasted into SQL (identifiers cannot be bound parameters). */
export function schemaName(schema = "atomkit"): string {
  if (!SCHEMA_RE.test(schema)) {
    throw new TrailError(`invalid PostgreSQL schema name ${JSON.stringify(schema)}`, {
      expected: "lower-case letters, digits and '_', starting with a letter or '_', at most 63 characters",
      found: schema,
      hint: 'e.g. postgresTrail({ schema: "atomkit_staging" })',
    });
  }
  return `"${schema}"`;
}

/** A 64-bit advisory lock key for `name` within `schema`: stores in other schemas never collide. */
export function lockKey(schema: string, name: string): string {
  return BigInt.asIntN(
    64,
    createHash("sha256").update(`atomkit\0${schema}\0${name}`).digest().readBigUInt64BE(0),
  ).toString();
}

/**
 * Brings the schema to SCHEMA_VERSION in one transaction, under an advisory lock so that controllers
 * starting at once migrate once. Returns the versions it applied.
 */
export async function migrate(client: pg.PoolClient, schema: string): Promise<number[]> {
  const s = schemaName(schema);
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1::bigint)", [lockKey(schema, "migrate")]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${s}.migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const current = await versionIn(client, s);
    refuseNewer(current, schema);
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      await client.query(m.sql(s));
      await client.query(`INSERT INTO ${s}.migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
      applied.push(m.version);
    }
    await client.query("COMMIT");
    return applied;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}

/** The schema's version, 0 when it has none yet. */
export async function schemaVersion(client: pg.PoolClient, schema: string): Promise<number> {
  const s = schemaName(schema);
  const { rows } = await client.query<{ t: string | null }>("SELECT to_regclass($1) AS t", [
    `${s}.migrations`,
  ]);
  if (!rows[0]?.t) return 0;
  return versionIn(client, s);
}

async function versionIn(client: pg.PoolClient, s: string): Promise<number> {
  const { rows } = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${s}.migrations`);
  return rows[0]?.v ?? 0;
}

export function refuseNewer(current: number, schema: string): void {
  if (current > SCHEMA_VERSION) {
    throw new TrailError(
      `the trail schema "${schema}" is at version ${current}, newer than this Atomkit knows`,
      {
        expected: `schema version ${SCHEMA_VERSION} or older`,
        found: `version ${current}`,
        hint: "upgrade @atomkit/store-postgres on this machine to the version the other controllers use",
      },
    );
  }
}

import { readFileSync } from "node:fs";
import { TrailError } from "@atomkit/core";
import { maskUrlPasswords } from "@atomkit/core/kit";
import pg from "pg";

/** How `postgresTrail` reaches the database. */
export interface ConnectionOptions {
  /**
   * `postgres://user@host:port/db` (or `postgresql://`, or a unix socket: `postgres:///db?host=/run/postgresql`).
   * Default `ATOMKIT_TRAIL_URL`, then libpq's `PG*` variables. Keep a password out of the deploy file:
   * take the URL from the environment, or give `passwordFile`, or use `PGPASSWORD` / `~/.pgpass`.
   */
  connectionString?: string;
  /** An existing pool (its owner closes it; `close()` then leaves it open). */
  pool?: pg.Pool;
  /** A file holding the password alone (e.g. a mounted secret); read once, never printed. */
  passwordFile?: string;
  /** Connections for trail writes and reads. Default 4 (a run writes one record at a time per host). */
  max?: number;
  /** How long to wait for a connection before failing. Default 10 000 ms. */
  connectTimeoutMs?: number;
}

export interface Connection {
  pool: pg.Pool;
  /** Where, for messages: never the password. */
  where: string;
  /** A fresh client of its own (the locks' session), with the pool's settings. */
  client(): pg.Client;
  close(): Promise<void>;
}

export function connect(o: ConnectionOptions): Connection {
  const connectionString = o.connectionString ?? process.env.ATOMKIT_TRAIL_URL;
  const password = o.passwordFile ? readPassword(o.passwordFile) : undefined;
  const config: pg.ClientConfig = {
    ...(connectionString ? { connectionString } : {}),
    ...(password !== undefined ? { password } : {}),
    connectionTimeoutMillis: o.connectTimeoutMs ?? 10_000,
    keepAlive: true,
    application_name: "atomkit",
  };
  const pool = o.pool ?? new pg.Pool({ ...config, max: o.max ?? 4, idleTimeoutMillis: 10_000 });
  // an idle client whose server went away emits "error" on the pool: without a listener that would
  // crash the process; the next query gets a fresh connection or a clear error
  if (!o.pool) pool.on("error", () => {});
  return {
    pool,
    where: describe(connectionString),
    client: () =>
      new pg.Client(o.pool ? (o.pool as unknown as { options: pg.ClientConfig }).options : config),
    async close() {
      if (!o.pool) await pool.end().catch(() => {});
    },
  };
}

function readPassword(file: string): string {
  try {
    return readFileSync(file, "utf8").replace(/\r?\n$/, "");
  } catch (error) {
    throw new TrailError(`cannot read the PostgreSQL password file ${file}`, {
      expected: "a readable file holding the password alone",
      found: (error as NodeJS.ErrnoException).code ?? String(error),
      hint: "check the path and its permissions (passwordFile), or use PGPASSWORD / ~/.pgpass",
      cause: error,
    });
  }
}

/** `postgres://user@host:port/db` without a password, for messages. */
export function describe(connectionString: string | undefined): string {
  if (!connectionString) {
    const env = process.env;
    return `postgres://${env.PGUSER ?? ""}@${env.PGHOST ?? "localhost"}:${env.PGPORT ?? 5432}/${env.PGDATABASE ?? ""} (from PG* variables)`;
  }
  try {
    const url = new URL(connectionString);
    url.password = "";
    url.searchParams.delete("password");
    return url.toString();
  } catch {
    return "postgres://(an unparsable connection string)";
  }
}

/** A database failure as a TrailError that says where, what, and what to do; never the password. */
export function storeError(where: string, doing: string, error: unknown): TrailError {
  if (error instanceof TrailError) return error;
  const e = error as { code?: string; message?: string };
  const code = e?.code ?? "";
  const hint =
    code === "ECONNREFUSED" ||
    code === "ENOTFOUND" ||
    code === "ETIMEDOUT" ||
    /timeout/i.test(e?.message ?? "")
      ? "the database is unreachable: check that it runs and the URL (ATOMKIT_TRAIL_URL); nothing ran while it was down"
      : code === "57P01" ||
          code === "57P02" ||
          code === "57P03" ||
          /terminat|Connection ended/i.test(e?.message ?? "")
        ? "the database restarted or closed the connection: retry; an interrupted run is finished by `atomkit recover`"
        : code === "28P01" || code === "28000"
          ? "the database refused the credentials: check the user and the password (PGPASSWORD, ~/.pgpass or passwordFile)"
          : code === "3D000"
            ? "the database does not exist: create it (createdb), or fix the URL"
            : code === "42501"
              ? "the user lacks a privilege: grant it CREATE on the database (for the schema) or run `atomkit store migrate` as its owner"
              : "see the database's log";
  return new TrailError(
    `cannot ${doing} the trail in PostgreSQL at ${where}: ${scrub(e?.message ?? String(error))}`,
    {
      expected: `the trail ${doing === "write" ? "written and committed" : "read"}`,
      found: code || "an error",
      hint,
      cause: error,
    },
  );
}

/** Messages of the driver may quote the connection string: its password never goes further. */
function scrub(message: string): string {
  return maskUrlPasswords(message);
}

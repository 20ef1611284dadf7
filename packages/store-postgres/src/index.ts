import { sealTrail, TrailError, type TrailStore, trailKey } from "@atomkit/core";
import { type ConnectionOptions, connect, storeError } from "./connection";
import { type LockTiming, takeLocks } from "./lock";
import { migrate, refuseNewer, SCHEMA_VERSION, schemaName, schemaVersion } from "./schema";
import { recordStore } from "./store";

export type { ConnectionOptions } from "./connection";
export type { LockTiming } from "./lock";
export { SCHEMA_VERSION } from "./schema";

/** Where `postgresTrail` connects, which schema it uses, and how records are sealed. */
export interface PostgresTrailOptions extends ConnectionOptions, LockTiming {
  /** The schema holding the trail's tables. Default `atomkit`; one per environment if you like. */
  schema?: string;
  /**
   * Apply the schema's migrations on first use. Default true; `false`: refuse a schema that is not
   * current (a user without CREATE rights, migrated by `atomkit store migrate` as the owner).
   */
  migrate?: boolean;
  /**
   * The key that seals every record (see core's `sealTrail`): a record edited or forged in the
   * database is refused by recover and undo. Default `ATOMKIT_TRAIL_KEY` (64 hex digits, or a
   * passphrase of 16 characters or more); every controller that shares the database needs the same key.
   * It is never stored in the database: whoever can write there must not be able to sign. `false`: an
   * unsealed trail (tests).
   */
  key?: Uint8Array | string | false;
}

/** A `TrailStore` with store locks, migrations, removal and listing, and its `close()`. */
export type PostgresTrail = TrailStore &
  Required<Pick<TrailStore, "lock" | "migrate" | "remove" | "listIds" | "close">> & {
    /** Where, without the password. */
    readonly where: string;
    /** The schema holding the trail's tables. */
    readonly schema: string;
  };

/**
 * A trail and lock store in PostgreSQL, for teams whose controllers come and go (CI runners): every
 * run's records, `recover`/`undo`/`rollback`/`status` from any machine with the database and SSH, and
 * store locks so that two controllers never deploy the same host at once.
 *
 * ```ts
 * // atomkit.config.ts
 * trail: postgresTrail({ connectionString: process.env.DATABASE_URL })
 * ```
 * or `ATOMKIT_TRAIL_URL=postgres://…` with no `trail` in the deploy file.
 */
export function postgresTrail(options: PostgresTrailOptions = {}): PostgresTrail {
  const schema = options.schema ?? "atomkit";
  schemaName(schema);
  const conn = connect(options);
  let readying: Promise<void> | undefined;
  const ready = () => {
    readying ??= (async () => {
      const client = await conn.pool
        .connect()
        .catch((error) => Promise.reject(storeError(conn.where, "read", error)));
      try {
        if (options.migrate === false) {
          const version = await schemaVersion(client, schema);
          refuseNewer(version, schema);
          if (version < SCHEMA_VERSION)
            throw new TrailError(`the trail schema "${schema}" at ${conn.where} is at version ${version}`, {
              expected: `schema version ${SCHEMA_VERSION}`,
              found: `version ${version}`,
              hint: "run `atomkit store migrate` as a user that may create tables, or drop `migrate: false`",
            });
        } else await migrate(client, schema);
      } catch (error) {
        throw storeError(conn.where, "write", error);
      } finally {
        client.release();
      }
    })();
    // a database that was down is tried again by the next call
    readying.catch(() => (readying = undefined));
    return readying;
  };
  const inner = recordStore(conn, schema, ready);
  const key = options.key === false ? false : (options.key ?? process.env.ATOMKIT_TRAIL_KEY);
  const store =
    key === false
      ? inner
      : sealTrail(inner, async () => {
          if (key === undefined || key === "") {
            throw new TrailError("no trail key for the PostgreSQL trail", {
              expected: "ATOMKIT_TRAIL_KEY (64 hex digits, or a passphrase of 16 characters or more)",
              found: "none set",
              hint: "every controller sharing the database needs the same key: set ATOMKIT_TRAIL_KEY from your CI secrets (generate one: node -e \"console.log(require('crypto').randomBytes(32).toString('hex'))\")",
            });
          }
          return trailKey(key);
        });
  return {
    ...store,
    where: conn.where,
    schema,
    remove: (id) => store.remove!(id),
    listIds: (q) => store.listIds!(q),
    async lock(names, owner) {
      await ready();
      return takeLocks(conn, schema, names, owner, options);
    },
    async migrate() {
      const client = await conn.pool
        .connect()
        .catch((error) => Promise.reject(storeError(conn.where, "write", error)));
      try {
        const applied = await migrate(client, schema);
        return { version: SCHEMA_VERSION, applied };
      } catch (error) {
        throw storeError(conn.where, "write", error);
      } finally {
        client.release();
      }
    },
    async close() {
      await inner.flush().catch(() => {});
      await conn.close();
    },
  };
}

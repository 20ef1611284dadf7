import { hostname } from "node:os";
import { AtomError, LockedError, type StoreLock, type StoreLockOwner } from "@atomkit/core";
import type pg from "pg";
import type { Connection } from "./connection";
import { storeError } from "./connection";
import { lockKey, schemaName } from "./schema";

/** How soon the store locks of a controller that stopped answering are freed. */
export interface LockTiming {
  /**
   * A controller that stops answering (frozen, cut off) loses its locks after this long without a word
   * on its lock session (PostgreSQL's `idle_session_timeout`); a live one speaks every third of it.
   * A controller that dies loses them at once: its session ends with its process. Default 30 000 ms.
   */
  idleMs?: number;
}

/**
 * Store locks are session-level advisory locks on a connection of their own: the lock lives exactly as
 * long as the controller's session, so a controller that dies (SIGKILL, a lost machine) frees its
 * hosts without any heartbeat to wait for, and `recover` from another machine can tell it is gone.
 * Taking several is all or none, serialised by a transaction lock so two controllers racing for the
 * same fleet cannot each get half of it: one gets every host, the other none.
 */
export async function takeLocks(
  conn: Connection,
  schema: string,
  names: readonly string[],
  owner: StoreLockOwner,
  timing: LockTiming = {},
): Promise<StoreLock> {
  const s = schemaName(schema);
  const idleMs = timing.idleMs ?? 30_000;
  const client = conn.client();
  const lost = new AbortController();
  const loseWith = (why: string) => {
    if (lost.signal.aborted || released) return;
    lost.abort(
      new AtomError("ATOM_LOCKED", `lost the store lock(s) ${names.join(", ")}: ${why}`, {
        expected: "the controller's database session alive until the run ends",
        found: why,
        hint: "another controller may take these hosts now; the host lease still guards each host. Finish what was interrupted with `atomkit recover`",
      }),
    );
  };
  let released = false;
  client.on("error", (error) => loseWith(error.message));
  client.on("end", () => loseWith("the database connection ended"));
  try {
    await client.connect();
    await client.query(`SET idle_session_timeout = ${Math.max(1000, Math.floor(idleMs))}`);
    await client.query("BEGIN");
    // one taker at a time: of two controllers racing for overlapping hosts, exactly one gets them all
    await client.query("SELECT pg_advisory_xact_lock($1::bigint)", [lockKey(schema, "lock-gate")]);
    const keys = names.map((n) => lockKey(schema, n));
    const { rows } = await client.query<{ i: string; ok: boolean }>(
      "SELECT i, pg_try_advisory_lock(k) AS ok FROM unnest($1::bigint[]) WITH ORDINALITY AS u(k, i)",
      [keys],
    );
    const refused = rows.filter((r) => !r.ok).map((r) => names[Number(r.i) - 1]!);
    if (refused.length) {
      await client.query("SELECT pg_advisory_unlock_all()");
      await client.query("COMMIT");
      throw await heldError(client, s, refused);
    }
    await client.query(
      `INSERT INTO ${s}.locks (name, owner, note, pid, machine, backend)
       SELECT n, $2, $3, $4, $5, pg_backend_pid() FROM unnest($1::text[]) AS n
       ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, note = EXCLUDED.note, pid = EXCLUDED.pid,
         machine = EXCLUDED.machine, backend = EXCLUDED.backend, since = now()`,
      [[...names], owner.owner, owner.note ?? null, process.pid, hostname()],
    );
    await client.query("COMMIT");
  } catch (error) {
    released = true;
    await client.end().catch(() => {});
    if (error instanceof LockedError) throw error;
    throw storeError(conn.where, "write", error);
  }
  // a word every third of the idle timeout keeps the session (and its locks); a failed one means the
  // session is gone, and so are the locks
  let speaking: Promise<unknown> = Promise.resolve();
  const timer = setInterval(
    () => {
      speaking = speaking.then(() => client.query("SELECT 1").catch((e: Error) => loseWith(e.message)));
    },
    Math.max(300, Math.floor(idleMs / 3)),
  );
  timer.unref();
  return {
    names,
    signal: lost.signal,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await speaking;
      try {
        await client.query(
          `DELETE FROM ${s}.locks WHERE name = ANY($1::text[]) AND backend = pg_backend_pid()`,
          [[...names]],
        );
        await client.query("SELECT pg_advisory_unlock_all()");
      } catch {
        // the session is gone, and its locks with it
      } finally {
        await client.end().catch(() => {});
      }
    },
  };
}

/** Names who holds the first refused lock, from the holders' table (written when they took it). */
async function heldError(client: pg.Client, s: string, refused: string[]): Promise<LockedError> {
  const { rows } = await client.query<{
    name: string;
    owner: string;
    note: string | null;
    pid: number;
    machine: string;
    since: Date;
  }>(`SELECT name, owner, note, pid, machine, since FROM ${s}.locks WHERE name = ANY($1::text[])`, [refused]);
  const row = rows.find((r) => r.name === refused[0]) ?? rows[0];
  const since = row?.since instanceof Date ? row.since.toISOString() : "";
  const holder = {
    owner: row?.owner ?? "unknown",
    pid: row?.pid ?? 0,
    machine: row?.machine ?? "unknown",
    startedAt: since,
    heartbeatAt: since,
  };
  const who = `${holder.owner} (pid ${holder.pid} on ${holder.machine})`;
  return new LockedError(
    `${refused.length === 1 ? `${refused[0]} is` : `${refused.length} hosts (${refused.slice(0, 5).join(", ")}${refused.length > 5 ? ", …" : ""}) are`} held by another controller: ${who}${since ? ` since ${since}` : ""}`,
    holder,
    false,
    {
      expected: "no other controller deploying these hosts",
      found: `${who}${row?.note ? `, ${row.note}` : ""}`,
      hint: "wait for that deploy to finish (it holds the lock while it runs, and loses it if its process dies); nothing was changed",
    },
  );
}

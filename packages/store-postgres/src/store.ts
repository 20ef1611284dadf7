import { type RunQuery, TrailError, type TrailRecord, type TrailStore } from "@atomkit/core";
import { refuseOversized, summarizeAll, turns } from "@atomkit/core/kit";
import type { Connection } from "./connection";
import { storeError } from "./connection";
import { schemaName } from "./schema";

/**
 * The trail's records in PostgreSQL, unsealed (`postgresTrail` seals it). One statement per append:
 * the run's index row and its records go in together or not at all, and the statement is committed
 * (synchronous_commit) before it returns, so an intent is durable before `apply` starts. Appends
 * without `sync` wait in memory and go out with the next synced one, in order, as the file trail's do.
 */
export function recordStore(
  conn: Connection,
  schema: string,
  ready: () => Promise<void>,
): TrailStore & { flush(): Promise<void> } {
  const s = schemaName(schema);
  // boxed lines: a failed append drops its own by identity (two records may serialize alike)
  const pending = new Map<string, Array<{ line: string }>>();
  const inTurn = turns();

  const query = async <R extends object = Record<string, unknown>>(
    doing: "read" | "write",
    text: string,
    values: unknown[],
  ) => {
    await ready();
    try {
      return await conn.pool.query<R>(text, values);
    } catch (error) {
      throw storeError(conn.where, doing, error);
    }
  };

  const APPEND = `
    WITH head AS (
      INSERT INTO ${s}.runs AS r (id, kind, atom, host, fleet, mode, undo_of, started_at, status, ended_at, records)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($9, 'unfinished'), $10, $11)
      ON CONFLICT (id) DO UPDATE SET
        records = r.records + EXCLUDED.records,
        status = COALESCE($9, r.status),
        ended_at = COALESCE($10, r.ended_at)
      RETURNING r.records
    )
    INSERT INTO ${s}.records (run_id, seq, body)
    SELECT $1, head.records - $11 + u.ord - 1, u.body
    FROM head, unnest($12::text[]) WITH ORDINALITY AS u(body, ord)`;

  /**
   * Writes what waits for `runId`, all or nothing; on failure the failing append's own lines are
   * dropped and the rest wait for the next write. One run's writes go one at a time, each taking what
   * waits when it starts: two writers that took the same lines (an append and a read flushing the run)
   * wrote them twice, and the duplicate breaks the sealed chain.
   */
  const write = (runId: string, own: ReadonlyArray<{ line: string }> = []) =>
    inTurn(runId, async () => {
      const boxes = pending.get(runId);
      if (!boxes?.length) return;
      pending.delete(runId);
      const lines = boxes.map((b) => b.line);
      const records = lines.map((l) => JSON.parse(l) as TrailRecord);
      const first = records[0]!;
      const end = records.findLast((r) => r.t === "end" || r.t === "fleet-end") as
        | { status: string; at: string }
        | undefined;
      const head =
        first.t === "run"
          ? [first.t, first.atom, first.host, first.fleet ?? null, first.mode, first.undoOf ?? null, first.at]
          : first.t === "fleet"
            ? [first.t, first.atom, null, null, first.mode, first.undoOf ?? null, first.at]
            : [null, null, null, null, null, null, null];
      try {
        await query("write", APPEND, [
          runId,
          ...head,
          end?.status ?? null,
          end?.at ?? null,
          lines.length,
          lines,
        ]);
      } catch (error) {
        const back = [...boxes, ...(pending.get(runId) ?? [])].filter((b) => !own.includes(b));
        if (back.length) pending.set(runId, back);
        else pending.delete(runId);
        throw error;
      }
    });

  const flush = async () => {
    for (const runId of [...pending.keys()]) await write(runId);
  };

  return {
    flush,
    async append(runId, records, options = {}) {
      const lines = records.map((r) => {
        const line = JSON.stringify(r);
        refuseOversized(runId, r, Buffer.byteLength(line));
        return { line };
      });
      pending.set(runId, [...(pending.get(runId) ?? []), ...lines]);
      const ending = records.some((r) => r.t === "end" || r.t === "fleet-end");
      if (!options.sync && !ending) return;
      await write(runId, lines);
    },
    async readRun(runId) {
      if (pending.has(runId)) await write(runId);
      const { rows } = await query<{ body: string; seq: number }>(
        "read",
        `SELECT body, seq FROM ${s}.records WHERE run_id = $1 ORDER BY seq`,
        [runId],
      );
      return rows.map((row, i) => {
        // a row is a whole record or none (one statement): a bad one was written by someone else
        try {
          if (row.seq !== i) throw new Error(`record ${i + 1} is missing`);
          return JSON.parse(row.body) as TrailRecord;
        } catch (error) {
          throw new TrailError(`trail run ${runId} in PostgreSQL is corrupt at record ${i + 1}`, {
            cause: error,
            hint: "the records table was edited by hand; restore it from a backup, or delete the run",
          });
        }
      });
    },
    async listIds(q?: RunQuery) {
      await flush();
      const where: string[] = [];
      const values: unknown[] = [];
      const add = (column: string, value: unknown, many = false) => {
        values.push(value);
        where.push(many ? `${column} = ANY($${values.length}::text[])` : `${column} = $${values.length}`);
      };
      if (q?.host !== undefined) add("host", typeof q.host === "string" ? [q.host] : [...q.host], true);
      if (q?.atom !== undefined) add("atom", q.atom);
      if (q?.fleet !== undefined) add("fleet", q.fleet);
      if (q?.undoOf !== undefined) add("undo_of", q.undoOf);
      // "corrupt" is only known by reading: the index cannot select it
      if (q?.status !== undefined && q.status !== "corrupt") add("status", q.status);
      if (where.length) where.push("kind IS DISTINCT FROM 'fleet'");
      const { rows } = await query<{ id: string }>(
        "read",
        `SELECT id FROM ${s}.runs ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY started_at, id`,
        values,
      );
      return rows.map((r) => r.id);
    },
    async listRuns(q) {
      const ids = await this.listIds!(q);
      const many = ids.length > 1 ? await this.readRuns!(ids) : new Map<string, TrailRecord[]>();
      return summarizeAll(ids, async (id) => many.get(id) ?? this.readRun(id), q);
    },
    async readRuns(ids) {
      await flush();
      const { rows } = await query<{ run_id: string; body: string; seq: number }>(
        "read",
        `SELECT run_id, body, seq FROM ${s}.records WHERE run_id = ANY($1::text[]) ORDER BY run_id, seq`,
        [[...ids]],
      );
      const out = new Map<string, TrailRecord[]>();
      const bad = new Set<string>();
      for (const row of rows) {
        const list = out.get(row.run_id) ?? [];
        out.set(row.run_id, list);
        try {
          if (row.seq !== list.length) throw new Error("a record is missing");
          list.push(JSON.parse(row.body) as TrailRecord);
        } catch {
          bad.add(row.run_id);
        }
      }
      // a run with a bad row is read alone, where its error names the record
      for (const id of bad) out.delete(id);
      return out;
    },
    async stamps(ids) {
      const { rows } = await query<{ id: string; records: number }>(
        "read",
        `SELECT id, records FROM ${s}.runs WHERE id = ANY($1::text[])`,
        [[...ids]],
      );
      return new Map(rows.map((r) => [r.id, String(r.records)]));
    },
    remove(runId) {
      return inTurn(runId, async () => {
        pending.delete(runId);
        await query("write", `DELETE FROM ${s}.runs WHERE id = $1`, [runId]);
      });
    },
  };
}

import { createHmac, timingSafeEqual } from "node:crypto";
import { turns } from "./_utils";
import { TrailError } from "./errors";
import { SummaryCache, type TrailRecord, type TrailStore } from "./trail";

/** A key, or how to get it when first needed (a key file is created on the first write). */
export type TrailKey = Uint8Array | ((purpose: "read" | "write") => Promise<Uint8Array>);

/**
 * Seals a trail: every record gets `mac`, an HMAC-SHA256 (with a per-project key that is kept outside the
 * trail) over the record and the previous record's mac, so a record that was edited, forged, spliced in
 * from another run or moved is refused on read. recover and undo act only on records that verify: a
 * trail is evidence, never a command.
 *
 * Cutting records off the end cannot be seen by a chain; it only ever makes a run look less finished,
 * and recover then re-observes (the safe direction).
 */
export function sealTrail(inner: TrailStore, key: TrailKey): TrailStore {
  let keyBytes: Promise<Uint8Array> | undefined;
  let readKey: Uint8Array | undefined;
  const getKey = async (purpose: "read" | "write") => {
    if (key instanceof Uint8Array) return key;
    if (purpose === "read") {
      // a key found is kept (every run read would read the key file again); a missing key file is
      // not created by a read, and asked for again next time
      if (readKey === undefined && keyBytes !== undefined) readKey = await keyBytes.catch(() => undefined);
      readKey ??= await key("read");
      return readKey;
    }
    keyBytes ??= key("write");
    keyBytes.catch(() => (keyBytes = undefined));
    return keyBytes;
  };
  /** The mac of each run's last record, once this process has read or written it. */
  const last = new Map<string, string>();
  /** Verified summaries, read again only when the store's stamp of a run changes. */
  const cache = new SummaryCache();

  const verified = async (runId: string, given?: readonly TrailRecord[]): Promise<TrailRecord[]> => {
    const records = given ? [...given] : await inner.readRun(runId);
    if (!records.length) return records;
    const k = await getKey("read");
    let prev = "";
    for (const [i, record] of records.entries()) {
      const { mac, ...rest } = record as TrailRecord & { mac?: string };
      if (typeof mac !== "string" || !equalHex(mac, macOf(k, prev, rest))) {
        throw new TrailError(
          `trail record ${i + 1} of run ${runId} fails its integrity check${mac ? "" : " (it has no mac)"}`,
          {
            expected: "records written by Atomkit with this project's trail key",
            found: `${record.t ?? "?"} record ${i + 1}${"step" in record ? ` of step "${record.step}"` : ""}`,
            hint: "the file was edited, forged, or copied from another run or project; nothing acts on it. If it is genuine, run with the key it was written with (ATOMKIT_TRAIL_KEY or the trail.key file beside the trail directory)",
          },
          "ATOM_TRAIL_CORRUPT",
        );
      }
      prev = mac;
    }
    last.set(runId, prev);
    return records;
  };

  /**
   * Appends to one run, one after another: each record is chained to the mac of the one before it, so
   * an append that started before the last one finished (a caller that did not wait, two callers of
   * this store) would seal against a stale "last" and its records would read back as forged.
   */
  const inTurn = turns();

  const appendNow = async (
    runId: string,
    records: readonly TrailRecord[],
    options: Parameters<TrailStore["append"]>[2],
  ): Promise<void> => {
    const k = await getKey("write");
    if (!last.has(runId)) await verified(runId);
    let prev = last.get(runId) ?? "";
    const sealed = records.map((record) => {
      const { mac: _, ...given } = record as TrailRecord & { mac?: string };
      // sealed as it will read back: JSON's round trip (an error's toJSON, a Date, an undefined in an
      // array) would otherwise make the record stored differ from the record sealed
      const rest = JSON.parse(JSON.stringify(given)) as object;
      prev = macOf(k, prev, rest);
      return { ...rest, mac: prev } as TrailRecord;
    });
    try {
      await inner.append(runId, sealed, options);
    } catch (error) {
      // The contract says a failed append leaves the store as before it, but a store may keep the
      // records for its next attempt: the next record is chained to what it holds, read back.
      last.delete(runId);
      cache.forget(runId);
      throw error;
    }
    last.set(runId, prev);
  };

  return {
    append: (runId, records, options) => inTurn(runId, () => appendNow(runId, records, options)),
    readRun: verified,
    ...(inner.remove
      ? {
          async remove(runId: string) {
            last.delete(runId);
            cache.forget(runId);
            await inner.remove!(runId);
          },
        }
      : {}),
    async listRuns(query) {
      // Every summary comes from verified records: a forged "rolled-back" must not hide a live change.
      // The store's index only chooses which runs to read (it could hide a run, as deleting its records
      // could; it cannot make one look finished).
      const ids = inner.listIds
        ? await inner.listIds(query)
        : (await inner.listRuns(query)).map((r) => r.runId);
      return cache.list(ids, await inner.stamps?.(ids), verified, query, inner.readRuns?.bind(inner));
    },
    async listIds(query) {
      return inner.listIds ? inner.listIds(query) : (await inner.listRuns(query)).map((r) => r.runId);
    },
    ...(inner.lock ? { lock: inner.lock.bind(inner) } : {}),
    ...(inner.stamps ? { stamps: inner.stamps.bind(inner) } : {}),
    ...(inner.migrate ? { migrate: inner.migrate.bind(inner) } : {}),
    ...(inner.close ? { close: () => inner.close!() } : {}),
  };
}

/** HMAC-SHA256 over the previous mac and the record's canonical JSON (sorted keys). */
function macOf(key: Uint8Array, prev: string, record: object): string {
  return createHmac("sha256", key).update(prev).update("\n").update(canonical(record)).digest("hex");
}

/** JSON with object keys sorted, so the mac does not depend on key order after a round trip. */
export function canonical(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? "null" : canonical(v))).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
}

function equalHex(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** A trail key from `ATOMKIT_TRAIL_KEY`-style text (64 hex digits, or a passphrase of 16+ characters) or bytes. */
export function keyFrom(given: Uint8Array | string): Uint8Array {
  if (typeof given !== "string") return given;
  if (/^[0-9a-fA-F]{64}$/.test(given)) return Buffer.from(given, "hex");
  if (given.length < 16) {
    throw new TrailError("the trail key is too short", {
      expected: "64 hex digits, or a passphrase of 16 characters or more (ATOMKIT_TRAIL_KEY)",
      found: `${given.length} characters`,
      hint: "generate one: node -e \"console.log(require('crypto').randomBytes(32).toString('hex'))\"",
    });
  }
  return Buffer.from(given, "utf8");
}

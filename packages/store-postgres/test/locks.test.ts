import { spawn } from "node:child_process";
import { join } from "node:path";
import { LockedError } from "@atomkit/core";
import { waitUntil } from "@atomkit/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { postgresTrail } from "../src";
import { dropSchema, freshSchema, PG_URL, pgMissing, sql } from "./_pg";

const HOLDER = join(import.meta.dirname, "fixtures", "holder.mjs");

describe.skipIf(pgMissing)("store locks", { timeout: 120_000 }, () => {
  const schema = freshSchema();
  const children: ReturnType<typeof spawn>[] = [];
  afterEach(async () => {
    for (const c of children.splice(0)) {
      c.kill("SIGCONT");
      c.kill("SIGKILL");
    }
    await dropSchema(schema);
  });

  /** A controller process holding `names`, once it says so. */
  const holder = async (idleMs: number, ...names: string[]) => {
    const child = spawn(process.execPath, [HOLDER, PG_URL!, schema, String(idleMs), ...names], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d;
    });
    await waitUntil(async () => out.includes("locked"), "the holder to take its locks");
    return child;
  };
  const tryTake = async (...names: string[]) => {
    const t = postgresTrail({ connectionString: PG_URL, schema, key: false });
    try {
      const l = await t.lock(names, { owner: "second@ci" });
      await l.release();
      return "taken";
    } catch (error) {
      if (error instanceof LockedError) return error.message;
      throw error;
    } finally {
      await t.close();
    }
  };

  it("a controller that dies frees its hosts at once; one that freezes, after idleMs", async () => {
    const dying = await holder(60_000, "host/a");
    expect(await tryTake("host/a")).toMatch(
      /host\/a is held by another controller: holder@frozen \(pid \d+ on /,
    );
    dying.kill("SIGKILL");
    // no TTL to wait out: the session ended with the process
    await waitUntil(async () => (await tryTake("host/a")) === "taken", "host/a to be free");

    const frozen = await holder(2_000, "host/b");
    frozen.kill("SIGSTOP");
    expect(await tryTake("host/b")).toMatch(/held by another controller/);
    // the server ends the silent session after idle_session_timeout, and its locks with it
    await waitUntil(async () => (await tryTake("host/b")) === "taken", "the frozen holder's lock to lapse");
  });

  it("a holder whose session is ended is told (its run then rolls back)", async () => {
    const t = postgresTrail({ connectionString: PG_URL, schema, key: false });
    const lock = await t.lock(["host/c"], { owner: "me" });
    expect(lock.signal.aborted).toBe(false);
    await sql("SELECT pg_terminate_backend(backend) FROM " + `"${schema}".locks WHERE name = 'host/c'`);
    await waitUntil(async () => lock.signal.aborted, "the lock's loss to be noticed");
    expect(String((lock.signal.reason as Error).message)).toMatch(/lost the store lock\(s\) host\/c/);
    await lock.release();
    await t.close();
    expect(await tryTake("host/c")).toBe("taken");
  });

  it("invalid schema names are refused before any SQL", () => {
    expect(() => postgresTrail({ connectionString: PG_URL, schema: 'x"; DROP TABLE y; --' })).toThrow(
      /invalid PostgreSQL schema name/,
    );
  });
});

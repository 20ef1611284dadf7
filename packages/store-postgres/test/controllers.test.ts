import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { localHost, recover } from "@atomkit/core";
import { hashTree } from "@atomkit/testkit";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { postgresTrail } from "../src";
import { dropSchema, freshSchema, KEY, PG_URL, pgMissing } from "./_pg";
// @ts-expect-error: a plain .mjs module shared with the controller child
import { kinds, readText } from "./fixtures/kinds.mjs";

const CHILD = join(import.meta.dirname, "fixtures", "controller.mjs");
const HOSTS = 3;
const children = new Set<ReturnType<typeof spawn>>();

interface Outcome {
  killed: boolean;
  result?: { status?: string; error?: string; message?: string; checkpoints?: number };
  err: string;
}

/**
 * One controller process. `otherMachine`: in a UTS namespace of its own with another host name, so its
 * leases name another machine: nothing but the heartbeat (60 s) or the store lock can tell it is dead.
 */
function controller(
  args: { schema: string; root: string; version: string; killAt?: number; hold?: string },
  options: { otherMachine?: boolean; onLine?: (line: string) => void } = {},
): Promise<Outcome> {
  const argv = [
    CHILD,
    PG_URL!,
    args.schema,
    args.root,
    String(HOSTS),
    args.version,
    String(args.killAt ?? 0),
    ...(args.hold ? [args.hold] : []),
  ];
  const [cmd, cmdArgs] = options.otherMachine
    ? [
        "unshare",
        ["--uts", "sh", "-c", 'hostname other-controller && exec "$0" "$@"', process.execPath, ...argv],
      ]
    : [process.execPath, argv];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd as string, cmdArgs as string[], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ATOMKIT_TRAIL_KEY: KEY },
    });
    children.add(child);
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d;
      options.onLine?.(out);
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d;
    });
    child.on("error", reject);
    child.on("close", (_code, signal) => {
      children.delete(child);
      const line = out.trim().split("\n").pop();
      resolve({ killed: signal === "SIGKILL", ...(line ? { result: JSON.parse(line) } : {}), err });
    });
  });
}

afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
});

describe.skipIf(pgMissing)("controllers sharing a PostgreSQL trail", { timeout: 300_000 }, () => {
  let root: string;
  let schema: string;
  const trails: Array<{ close(): Promise<void> }> = [];
  const open = () => {
    const t = postgresTrail({ connectionString: PG_URL, schema, key: KEY });
    trails.push(t);
    return t;
  };
  const trees = () => Promise.all(Array.from({ length: HOSTS }, (_, i) => hashTree(join(root, `h${i}`))));

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "atomkit-pg-ctl-"));
    schema = freshSchema();
    for (let i = 0; i < HOSTS; i++) {
      await mkdir(join(root, `h${i}`));
      await writeFile(join(root, `h${i}`, "a.txt"), "v0 a");
    }
  });
  afterEach(async () => {
    for (const t of trails.splice(0)) await t.close();
    await dropSchema(schema);
    await rm(root, { recursive: true, force: true });
  });

  it("a controller SIGKILLed anywhere on another machine is recovered at once from a second process with only the database", async () => {
    // every kill point: inside each apply (after its change) and between steps, 3 hosts × 3 steps × 2;
    // each in a tree and a schema of its own, three at a time (the children mostly wait on node and I/O)
    const before = await trees();
    const found: Record<string, number> = {};
    const points = Array.from({ length: HOSTS * 3 * 2 }, (_, i) => i + 1);
    const killPoint = async (killAt: number) => {
      const dir = await mkdtemp(join(tmpdir(), `atomkit-pg-kill-${killAt}-`));
      const own = freshSchema();
      const trail = postgresTrail({ connectionString: PG_URL, schema: own, key: KEY });
      try {
        for (let i = 0; i < HOSTS; i++) {
          await mkdir(join(dir, `h${i}`));
          await writeFile(join(dir, `h${i}`, "a.txt"), "v0 a");
        }
        const out = await controller(
          { schema: own, root: dir, version: "v1", killAt },
          { otherMachine: true },
        );
        expect(out.killed, `kill point ${killAt}: ${out.err}`).toBe(true);

        // the second process: only the database (and the hosts); no lease of the dead one is stale yet
        const results = await recover(trail, {
          host: (name) => localHost({ name, stateDir: join(dir, `state-${name}`) }),
          steps: kinds,
        });
        for (const r of results)
          found[`${r.found} → ${r.status}`] = (found[`${r.found} → ${r.status}`] ?? 0) + 1;
        expect(results.every((r) => r.status !== "rollback-failed")).toBe(true);
        expect(await trail.listRuns({ status: "unfinished" })).toEqual([]);
        // every host is back to its before-state, or holds the whole release
        for (let i = 0; i < HOSTS; i++) {
          const text = (f: string) => readText(join(dir, `h${i}`, `${f}.txt`));
          const whole = text("a") === "v1 a" && text("b") === "v1 b" && text("c") === "v1 c";
          const after = await hashTree(join(dir, `h${i}`));
          expect(
            after === before[i] || whole,
            `kill point ${killAt}, host h${i}: ${JSON.stringify(results.map((r) => [r.host, r.found, r.status]))} ${["a", "b", "c"].map(text)}`,
          ).toBe(true);
        }
      } finally {
        await trail.close();
        await dropSchema(own);
        await rm(dir, { recursive: true, force: true });
      }
    };
    const lane = async () => {
      for (let next = points.shift(); next !== undefined; next = points.shift()) await killPoint(next);
    };
    await Promise.all([lane(), lane(), lane()]);
    console.log("recovered from another process, by what recover found:", found);
    expect(Object.keys(found).length).toBeGreaterThan(1);
  });

  it("two controllers racing for one fleet: exactly one deploys, the other is refused with nothing changed", async () => {
    for (let round = 0; round < 3; round++) {
      const holdFile = join(root, `go-${round}`);
      const before = await trees();
      // both start together; the winner then waits in its `hold` step until the loser has answered
      const [a, b] = [
        controller({ schema, root, version: `A${round}`, hold: holdFile }),
        controller({ schema, root, version: `B${round}`, hold: holdFile }),
      ];
      const first = await Promise.race([a, b]);
      expect(first.result?.error, first.err).toBe("ATOM_LOCKED");
      expect(first.result?.message).toMatch(/held by another controller/);
      // the loser changed nothing: every host is as before, but for the winner's first step
      await writeFile(holdFile, "");
      const [ra, rb] = await Promise.all([a, b]);
      const statuses = [ra.result?.status ?? ra.result?.error, rb.result?.status ?? rb.result?.error].sort();
      expect(statuses).toEqual(["ATOM_LOCKED", "committed"]);
      const winner = ra.result?.status === "committed" ? `A${round}` : `B${round}`;
      for (let i = 0; i < HOSTS; i++) {
        expect(readText(join(root, `h${i}`, "a.txt"))).toBe(`${winner} a`);
        expect(readText(join(root, `h${i}`, "c.txt"))).toBe(`${winner} c`);
      }
      expect(await trees()).not.toEqual(before);
      // one fleet of host runs in the trail for this round, all committed
      const runs = await open().listRuns();
      expect(runs.filter((r) => r.status !== "committed")).toEqual([]);
      expect(runs).toHaveLength(HOSTS * (round + 1));
    }
  });
});

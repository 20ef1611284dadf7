import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atom, localHost, recover, run, TrailError } from "@atomkit/core";
import { freePort, hashTree } from "@atomkit/testkit";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { postgresTrail } from "../src";
import { freshSchema, KEY, pgMissing } from "./_pg";
// @ts-expect-error: a plain .mjs module shared with the controller child
import { act, kinds, put } from "./fixtures/kinds.mjs";

const SCRIPT = join(import.meta.dirname, "..", "..", "..", "scripts", "testbed", "postgres.sh");

/**
 * A cluster of the fault tests' own (the shared one serves the other suites, which must not see it
 * stop): started, stopped and restarted by the project's script, as the database of a real deploy would.
 */
class Cluster {
  url = "";
  constructor(private base: string) {}
  sh(cmd: string, port?: number) {
    const out = execFileSync("bash", [SCRIPT, cmd, ...(port ? [String(port)] : [])], {
      env: { ...process.env, ATOMKIT_TESTBED_DIR: this.base },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    const url = /ATOMKIT_PG_URL=(\S+)/.exec(out)?.[1];
    if (url) this.url = url;
  }
  start = async (port?: number) => this.sh("start", port);
  stop = async () => this.sh("stop");
  restart = async () => this.sh("restart");
}

describe.skipIf(pgMissing || process.getuid?.() !== 0)(
  "the database failing around a run",
  { timeout: 300_000 },
  () => {
    let base: string;
    let cluster: Cluster;
    let dir: string;

    beforeAll(async () => {
      base = await mkdtemp(join(tmpdir(), "atomkit-pg-faults-"));
      await chmod(base, 0o755);
      cluster = new Cluster(base);
      await cluster.start(await freePort());
    });
    // a test that failed with the database stopped must not fail the next one too
    beforeEach(() => cluster.start());
    afterAll(async () => {
      await cluster?.stop().catch(() => {});
      await rm(base, { recursive: true, force: true });
    });

    const setup = async () => {
      dir = await mkdtemp(join(tmpdir(), "atomkit-pg-fault-run-"));
      await mkdir(join(dir, "app"));
      await writeFile(join(dir, "app", "a.txt"), "v0 a");
      const schema = freshSchema();
      const host = localHost({ name: "web1", stateDir: join(dir, "state") });
      const trail = () => postgresTrail({ connectionString: cluster.url, schema, key: KEY });
      return { host, trail, before: await hashTree(join(dir, "app")) };
    };
    const release = (middle: unknown[]) =>
      atom("release", {
        steps: [
          put({ path: join(dir, "app", "a.txt"), text: "v1 a" }, { name: "a" }),
          ...middle,
          put({ path: join(dir, "app", "b.txt"), text: "v1 b" }, { name: "b" }),
        ],
      });

    it("unreachable before a run: a clear error naming where, and nothing changed", async () => {
      const { host, before } = await setup();
      const port = await freePort();
      const trail = postgresTrail({
        connectionString: `postgres://deployer:s3cret-pw@127.0.0.1:${port}/atomkit`,
        key: KEY,
        connectTimeoutMs: 5_000,
      });
      const error = await run(release([]), { host, trail }).catch((e: unknown) => e);
      await trail.close();
      expect(error).toBeInstanceOf(TrailError);
      const text = `${(error as Error).message}\n${JSON.stringify(error)}`;
      expect(text).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}`));
      expect((error as TrailError).hint).toMatch(/unreachable/);
      // the password never shows
      expect(text).not.toMatch(/s3cret-pw/);
      expect(await hashTree(join(dir, "app"))).toBe(before);
      // and no lease was left on the host
      expect(await host.readdir(join(dir, "state", "locks")).catch(() => [])).toEqual([]);
    });

    it("stopped between steps: the next step is not applied without its intent, the run rolls back; recover records it once the database is back", async () => {
      const { host, trail, before } = await setup();
      act.actions.set("stop", () => cluster.stop());
      const t = trail();
      const result = await run(release([act({ id: "stop" }, { name: "db-stops" })]), {
        host,
        trail: t,
        backoffMs: 0,
      });
      await t.close();
      expect(result.status).toBe("rolled-back");
      // the host is back; the trail could not take the outcome, and says so
      expect(await hashTree(join(dir, "app"))).toBe(before);
      expect(result.trailError).toBeDefined();
      // b's intent could not be written, so b never acted
      expect(result.steps.find((s) => s.name === "b")?.status).toBe("failed-unchanged");

      await cluster.start();
      const t2 = trail();
      expect((await t2.listRuns()).map((r) => r.status)).toEqual(["unfinished"]);
      const [recovered] = await recover(t2, { host, steps: kinds });
      expect(recovered?.status).toBe("rolled-back");
      expect((await t2.listRuns()).map((r) => r.status)).toEqual(["rolled-back"]);
      expect(await hashTree(join(dir, "app"))).toBe(before);
      await t2.close();
    });

    it("restarted between steps: the run loses its store lock, stops and rolls back, and the trail says so", async () => {
      const { host, trail, before } = await setup();
      act.actions.set("restart", () => cluster.restart());
      const t = trail();
      const result = await run(release([act({ id: "restart" }, { name: "db-restarts" })]), {
        host,
        trail: t,
        backoffMs: 0,
      });
      expect(result.status).toBe("rolled-back");
      // the lock's session died with the restart (or, first, a write on a dead connection failed)
      expect(result.reason?.message).toMatch(/lost the store lock|cannot write the trail/);
      expect(await hashTree(join(dir, "app"))).toBe(before);
      expect(await readFile(join(dir, "app", "a.txt"), "utf8")).toBe("v0 a");
      await t.close();
      // whatever records a dead connection lost, recover completes them: the trail ends rolled back
      const t2 = trail();
      if ((await t2.listRuns()).some((r) => r.status === "unfinished"))
        await recover(t2, { host, steps: kinds });
      expect((await t2.listRuns()).map((r) => r.status)).toEqual(["rolled-back"]);
      await t2.close();
    });

    it("stopped during rollback: the undo still runs (the host is restored), recover records it later", async () => {
      const { host, trail, before } = await setup();
      act.actions.set("stop-and-fail", () => cluster.stop());
      const t = trail();
      const result = await run(
        atom("release", {
          steps: [
            put({ path: join(dir, "app", "a.txt"), text: "v1 a" }, { name: "a" }),
            put({ path: join(dir, "app", "b.txt"), text: "v1 b" }, { name: "b" }),
            act({ id: "stop-and-fail", fail: true }, { name: "fails" }),
          ],
        }),
        { host, trail: t, backoffMs: 0 },
      );
      await t.close();
      expect(result.status).toBe("rolled-back");
      expect(result.trailError).toBeDefined();
      expect(await hashTree(join(dir, "app"))).toBe(before);

      await cluster.start();
      const t2 = trail();
      const [recovered] = await recover(t2, { host, steps: kinds });
      expect(recovered?.status).toBe("rolled-back");
      expect((await t2.listRuns()).map((r) => r.status)).toEqual(["rolled-back"]);
      expect(await hashTree(join(dir, "app"))).toBe(before);
      await t2.close();
    });
  },
);

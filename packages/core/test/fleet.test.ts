import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { atom, defineStep, localHost, memoryTrail, runFleet } from "../src/index";
import { planBatches } from "../src/kit";
import { tempDir } from "./_helpers";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir("atomkit-fleet-"));
});
afterEach(() => cleanup());

/**
 * Per-host model state; the step fails on the hosts named in `failOn`, once `failWhen` (if given) has
 * resolved: a failure that must come after another host's run ended waits for it, not for a timer.
 */
function fleetModel(failOn: string[], failWhen?: Promise<unknown>) {
  const world = new Map<string, number>();
  const order: string[] = [];
  const bump = defineStep({
    kind: "fleet.bump",
    params: (p: { id: string }) => p,
    observe: async (ctx, p) => world.get(`${ctx.host.name}/${p.id}`) ?? 0,
    apply: async (ctx, p, before) => {
      order.push(ctx.host.name);
      await new Promise((r) => setTimeout(r, 5));
      if (failOn.includes(ctx.host.name) && p.id === "b") {
        await failWhen;
        throw new Error(`health check failed on ${ctx.host.name}`);
      }
      world.set(`${ctx.host.name}/${p.id}`, before + 1);
    },
    undo: async (ctx, p, before) => {
      world.set(`${ctx.host.name}/${p.id}`, before);
    },
  });
  const release = atom("release", {
    steps: [bump({ id: "a" }, { name: "a" }), bump({ id: "b" }, { name: "b" })],
  });
  return { world, order, release };
}

const hosts = (n: number) =>
  Array.from({ length: n }, (_, i) => localHost({ name: `h${i}`, stateDir: join(dir, `h${i}`) }));
const live = (world: Map<string, number>) =>
  [...world.entries()]
    .filter(([, v]) => v !== 0)
    .map(([k]) => k)
    .sort();

describe("runFleet", () => {
  it("plans canary batches", () => {
    expect(planBatches([1, 2, 3, 4, 5, 6, 7, 8], [1, "25%", "100%"]).map((b) => b.length)).toEqual([1, 2, 5]);
    expect(planBatches([1, 2, 3, 4, 5], 2).map((b) => b.length)).toEqual([2, 2, 1]);
    expect(planBatches([1, 2, 3], undefined).map((b) => b.length)).toEqual([3]);
    expect(() => planBatches([1], ["0%"])).toThrow(/invalid fleet batch size/);
  });

  it("commits every host, batch by batch", async () => {
    const m = fleetModel([]);
    const batches: string[][] = [];
    const r = await runFleet(m.release, hosts(5), {
      batch: [1, "50%"],
      backoffMs: 0,
      onBatch: (b) => batches.push(b.hosts),
    });
    expect(r.status).toBe("committed");
    expect(batches).toEqual([["h0"], ["h1", "h2", "h3"], ["h4"]]);
    expect(live(m.world)).toHaveLength(10);
  });

  it("rollback-all: one host failing mid-fleet rolls back every host, verified; later batches never run", async () => {
    // h1 and h2 run at once; h2 fails only after h1 committed, so h1 is undone by an undo run (were it
    // still running, rollback-all would abort it and it would roll back inside its own run)
    let h1Committed = () => {};
    const committed = new Promise<void>((resolve) => {
      h1Committed = resolve;
    });
    const m = fleetModel(["h2"], committed);
    const trail = memoryTrail();
    const r = await runFleet(m.release, hosts(6), {
      batch: [1, 2],
      trail,
      backoffMs: 0,
      onFailure: "rollback-all",
      onEvent: (e) => {
        // a macrotask later: h1's run() has returned its result to the fleet by then
        if (e.type === "run:end" && e.host === "h1" && e.status === "committed") setTimeout(h1Committed, 0);
      },
    });
    expect(r.status).toBe("rolled-back");
    expect(r.hosts.map((h) => [h.host, h.state])).toEqual([
      ["h0", "rolled-back"],
      ["h1", "rolled-back"],
      ["h2", "rolled-back"],
      ["h3", "not-run"],
      ["h4", "not-run"],
      ["h5", "not-run"],
    ]);
    expect(live(m.world)).toEqual([]);
    expect(m.order).not.toContain("h3");
    for (const h of r.hosts.filter((x) => x.undo)) expect(h.undo?.steps.every((s) => s.verified)).toBe(true);
    // the undo runs are in the trail, linked to each host's run
    const undos = (await trail.listRuns()).filter((x) => x.mode === "undo");
    expect(undos.map((u) => u.host).sort()).toEqual(["h0", "h1"]);
  });

  it("halt keeps committed hosts; a failure budget lets the fleet go on", async () => {
    const halted = fleetModel(["h1"]);
    const r1 = await runFleet(halted.release, hosts(4), { batch: 1, backoffMs: 0, onFailure: "halt" });
    expect(r1.status).toBe("partial");
    expect(r1.hosts.map((h) => h.state)).toEqual(["committed", "rolled-back", "not-run", "not-run"]);
    expect(live(halted.world)).toEqual(["h0/a", "h0/b"]);

    const budget = fleetModel(["h1"]);
    const r2 = await runFleet(budget.release, hosts(4), { batch: 1, backoffMs: 0, maxFailures: 1 });
    expect(r2.status).toBe("partial");
    expect(r2.failures).toBe(1);
    expect(r2.hosts.map((h) => h.state)).toEqual(["committed", "rolled-back", "committed", "committed"]);
  });

  it("rollback-all gives undo its secret params back (the trail never holds them)", async () => {
    const world = new Map<string, number>();
    const login = defineStep({
      kind: "fleet.login",
      params: (p: { token: string; failOn?: string }) => p,
      secret: ["token"],
      observe: async (ctx) => world.get(ctx.host.name) ?? 0,
      apply: async (ctx, p) => {
        world.set(ctx.host.name, 1);
        if (p.failOn === ctx.host.name) throw new Error("failed");
      },
      undo: async (ctx, p) => {
        if (p.token !== "tok-abcdef") throw new Error("undo needs the token");
        world.set(ctx.host.name, 0);
      },
    });
    const r = await runFleet(
      atom("rel", { steps: [login({ token: "tok-abcdef", failOn: "h1" }, { name: "login" })] }),
      hosts(2),
      {
        batch: 1,
        backoffMs: 0,
      },
    );
    expect(r.status, JSON.stringify(r.hosts.map((h) => h.error?.message))).toBe("rolled-back");
    expect([...world.values()]).toEqual([0, 0]);
  });

  it("refuses a fleet naming one host twice", async () => {
    const m = fleetModel([]);
    const h = localHost({ name: "same", stateDir: join(dir, "s") });
    await expect(runFleet(m.release, [h, h])).rejects.toThrow(/appears twice/);
  });
});

import { getEventListeners } from "node:events";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { atom, defineStep, type Host, localHost, memoryTrail, runFleet, undoFleet } from "../src/index";
import { DEFAULT_FLEET_CONCURRENCY } from "../src/kit";
import { tempDir } from "./_helpers";

// What a fleet costs the controller per host: how many hosts are in flight by default, and that a
// host's connection is closed when its part of the fleet ends (not held until the fleet ends).

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir("atomkit-fleet-scale-"));
});
afterEach(() => cleanup());

/** Real local hosts whose close() is logged (a connection-holding host would end its link there). */
function loggedHosts(n: number, log: string[]): Host[] {
  return Array.from({ length: n }, (_, i) => {
    const host = localHost({ name: `h${i}`, stateDir: join(dir, `h${i}`) });
    return Object.create(host, {
      close: {
        value: async () => {
          log.push(`close ${host.name}`);
          await host.close();
        },
      },
    }) as Host;
  });
}

function counterStep(world: Map<string, number>, failOn?: string) {
  return defineStep({
    kind: "scale.bump",
    params: (p: { id: string }) => p,
    observe: async (ctx) => world.get(ctx.host.name) ?? 0,
    apply: async (ctx, _p, before) => {
      world.set(ctx.host.name, before + 1);
      if (ctx.host.name === failOn) throw new Error(`health check failed on ${failOn}`);
    },
    undo: async (ctx, _p, before) => {
      world.set(ctx.host.name, before);
    },
  });
}

describe("runFleet at scale", () => {
  it(`runs at most ${DEFAULT_FLEET_CONCURRENCY} hosts at once unless told otherwise`, async () => {
    const n = DEFAULT_FLEET_CONCURRENCY + 10;
    let inFlight = 0;
    let started = 0;
    let most = 0;
    const waiting = new Set<() => void>();
    const wakeAll = () => {
      for (const w of [...waiting]) w();
      waiting.clear();
    };
    const step = defineStep({
      kind: "scale.wait",
      params: (p: { id: string }) => p,
      observe: async () => 0,
      apply: async () => {
        inFlight++;
        started++;
        most = Math.max(most, inFlight);
        wakeAll();
        // each waits until the default's worth of hosts are in flight (or every host started): without
        // a bound all n would be in flight at once
        while (inFlight < DEFAULT_FLEET_CONCURRENCY && started < n) {
          await new Promise<void>((resolve) => waiting.add(resolve));
        }
        inFlight--;
      },
      undo: async () => {},
    });
    const hosts = Array.from({ length: n }, (_, i) =>
      localHost({ name: `h${i}`, stateDir: join(dir, `h${i}`) }),
    );
    const r = await runFleet(atom("wait", { steps: [step({ id: "x" }, { name: "x" })] }), hosts, {
      lock: false,
    });
    expect(r.status).toBe("committed");
    expect(most).toBe(DEFAULT_FLEET_CONCURRENCY);
  });

  it("closes each host when its run ends, and again after the rollback-all undo that reopened it", async () => {
    const log: string[] = [];
    const world = new Map<string, number>();
    const bump = counterStep(world, "h2");
    const r = await runFleet(
      atom("rel", { steps: [bump({ id: "a" }, { name: "a" })] }),
      loggedHosts(3, log),
      {
        concurrency: 1,
        backoffMs: 0,
        onEvent: (e) => {
          if (e.type === "run:start") log.push(`${e.mode} ${e.host}`);
        },
      },
    );
    expect(r.status).toBe("rolled-back");
    expect([...world.values()]).toEqual([0, 0, 0]);
    expect(log).toEqual([
      "run h0",
      "close h0",
      "run h1",
      "close h1",
      "run h2",
      "close h2",
      // rollback-all: the committed hosts reconnect for their undo, then close again
      "undo h0",
      "close h0",
      "undo h1",
      "close h1",
    ]);
  });

  it("undoFleet closes each host it resolved when that host's undo ends", async () => {
    const log: string[] = [];
    const world = new Map<string, number>();
    const bump = counterStep(world);
    const release = atom("rel", { steps: [bump({ id: "a" }, { name: "a" })] });
    const trail = memoryTrail();
    const hosts = loggedHosts(2, log);
    const r = await runFleet(release, hosts, { trail, concurrency: 1 });
    expect(r.status).toBe("committed");
    log.length = 0;
    const u = await undoFleet(trail, r.fleetId, {
      host: (name) => hosts.find((h) => h.name === name)!,
      atom: () => release,
      concurrency: 1,
      onEvent: (e) => {
        if (e.type === "run:start") log.push(`${e.mode} ${e.host}`);
      },
    });
    expect(u.status).toBe("rolled-back");
    expect(log).toEqual(["undo h0", "close h0", "undo h1", "close h1"]);
  });

  it("hosts undoing at once do not share one step signal (no listener fan-out, no leak warning)", async () => {
    // rollback-all undoes every committed host at once; an undo that waits on its signal (a sleep, an
    // exec) adds a listener to it: shared by all hosts, they would pile up on one signal
    const n = 12;
    const world = new Map<string, number>();
    let waiting = 0;
    let most = 0;
    const release = new Set<() => void>();
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    const step = defineStep({
      kind: "scale.listen",
      params: (p: { id: string }) => p,
      observe: async (ctx) => world.get(ctx.host.name) ?? 0,
      apply: async (ctx, _p, before) => {
        world.set(ctx.host.name, before + 1);
        if (ctx.host.name === `h${n - 1}`) throw new Error("the last host fails");
      },
      undo: async (ctx, _p, before) => {
        // the failing host rolls back inside its own run, before the fleet's undos start
        if (ctx.host.name === `h${n - 1}`) return void world.set(ctx.host.name, before);
        const onAbort = () => {};
        ctx.signal.addEventListener("abort", onAbort);
        waiting++;
        most = Math.max(most, getEventListeners(ctx.signal, "abort").length);
        // every committed host's undo is in here at once before any leaves
        if (waiting === n - 1) for (const r of release) r();
        else await new Promise<void>((resolve) => release.add(resolve));
        ctx.signal.removeEventListener("abort", onAbort);
        world.set(ctx.host.name, before);
      },
    });
    try {
      const hosts = Array.from({ length: n }, (_, i) =>
        localHost({ name: `h${i}`, stateDir: join(dir, `h${i}`) }),
      );
      // the failing host runs last, alone: every other host has committed by then
      const r = await runFleet(atom("rel", { steps: [step({ id: "x" }, { name: "x" })] }), hosts, {
        batch: [n - 1, 1],
        backoffMs: 0,
      });
      expect(r.status).toBe("rolled-back");
      expect(waiting).toBe(n - 1);
      expect([...world.values()].every((v) => v === 0)).toBe(true);
    } finally {
      process.off("warning", onWarning);
    }
    expect(most).toBe(1);
    expect(warnings).not.toContain("MaxListenersExceededWarning");
  });
});

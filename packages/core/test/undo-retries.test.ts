import { describe, expect, it } from "vitest";
import { atom, defineStep, HostError, localHost, run } from "../src/index";

// Undo retries are for failures that can change (a link that drops, a daemon that is busy), not for
// the same deterministic failure again and again (a restart that fails the same way every time).

function kinds() {
  const tries = new Map<string, number>();
  let value = 0;
  const bump = defineStep({
    kind: "retry.bump",
    params: (p: { id: string; undo: "same" | "changing" | "auth" | "flaky"; fail?: boolean }) => p,
    observe: async () => ({ v: value }),
    apply: async (_ctx, p) => {
      value++;
      if (p.fail) throw new Error("apply fails after changing");
    },
    undo: async (_ctx, p) => {
      const n = (tries.get(p.id) ?? 0) + 1;
      tries.set(p.id, n);
      if (p.undo === "same") throw new Error("restart refused: bad config");
      if (p.undo === "changing") throw new Error(`attempt ${n}: daemon busy`);
      if (p.undo === "auth") throw new HostError("AUTH", "permission denied (publickey)", { host: "web1" });
      if (n < 3) throw new Error(`attempt ${n}: link dropped`);
      value--;
    },
  });
  return { bump, tries };
}

describe("undo retries", () => {
  const host = localHost({ stateDir: "/tmp/atomkit-undo-retries-state" });
  const go = async (undo: "same" | "changing" | "auth" | "flaky") => {
    const { bump, tries } = kinds();
    const r = await run(atom("a", { steps: [bump({ id: "x", undo, fail: true }, { undoRetries: 2 })] }), {
      host,
      lock: false,
      backoffMs: 0,
    });
    return { r, tries: tries.get("x") };
  };

  it("the same failure over the same state twice: no third attempt", async () => {
    const { r, tries } = await go("same");
    expect(r.status).toBe("rollback-failed");
    expect(tries).toBe(2);
    expect(r.error?.message).toMatch(/restart refused: bad config/);
  });

  it("a failure that changes is retried up to undoRetries", async () => {
    expect((await go("changing")).tries).toBe(3);
  });

  it("a failure that clears up is retried until it does", async () => {
    const { r, tries } = await go("flaky");
    expect(r.status).toBe("rolled-back");
    expect(tries).toBe(3);
  });

  it("credentials refused: not retried at all", async () => {
    const { r, tries } = await go("auth");
    expect(r.status).toBe("rollback-failed");
    expect(tries).toBe(1);
  });
});

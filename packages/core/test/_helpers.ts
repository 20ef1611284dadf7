import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineStep, localHost } from "../src/index";

/** A world of named counters standing in for host state, plus a log of what acted on it. */
export function model() {
  const world = new Map<string, number>();
  const log: string[] = [];
  const kind = defineStep({
    kind: "model.bump",
    params: (p: {
      id: string;
      failApply?: "before" | "after";
      hangApply?: boolean;
      failUndo?: number;
      lyingUndo?: boolean;
      secret?: string;
    }) => {
      if (typeof p?.id !== "string" || !p.id)
        throw Object.assign(new Error("id must be a non-empty string"), { path: "id" });
      return p;
    },
    describe: (p) => `bump ${p.id}`,
    secret: ["secret"],
    observe: async (_ctx, p) => ({ v: world.get(p.id) ?? 0 }),
    apply: async (ctx, p, before) => {
      if (p.failApply === "before") throw new Error(`apply of ${p.id} failed before changing anything`);
      if (p.hangApply) {
        world.set(p.id, before.v + 1);
        log.push(`apply:${p.id}`);
        await new Promise((_, reject) =>
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)),
        );
      }
      world.set(p.id, before.v + 1);
      log.push(`apply:${p.id}`);
      if (p.failApply === "after")
        throw new Error(`apply of ${p.id} failed after changing ${p.secret ?? ""}`);
    },
    undo: async (_ctx, p, before) => {
      const tries = (undoTries.get(p.id) ?? 0) + 1;
      undoTries.set(p.id, tries);
      if (p.failUndo !== undefined && tries <= p.failUndo)
        throw new Error(`undo of ${p.id} failed (attempt ${tries})`);
      if (p.lyingUndo) return;
      world.set(p.id, before.v);
      log.push(`undo:${p.id}`);
    },
  });
  const undoTries = new Map<string, number>();
  return { world, log, kind, undoTries };
}

export async function tempDir(
  prefix = "atomkit-core-",
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true, maxRetries: 10 }) };
}

export function testHost(dir: string) {
  return localHost({ stateDir: join(dir, ".state") });
}

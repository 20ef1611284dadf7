// Example step kinds the contract suite runs against: one over an in-memory model, one over real files.
import { defineStep, type Host, isNotFound } from "@atomkit/core";
import { z } from "zod";

/** A process-wide key/value store standing in for any remote state. */
export const memory = new Map<string, string>();

export const setKey = defineStep({
  kind: "memory.set",
  params: z.object({ key: z.string().min(1), value: z.string() }),
  describe: (p) => `set ${p.key} = ${p.value}`,
  observe: async (_ctx, p) => ({ value: memory.has(p.key) ? (memory.get(p.key) as string) : null }),
  apply: async (_ctx, p) => {
    memory.set(p.key, p.value);
  },
  undo: async (_ctx, p, before) => {
    if (before.value === null) memory.delete(p.key);
    else memory.set(p.key, before.value);
  },
});

/** Writes a file; before-state keeps the old content so undo needs nothing but the trail. */
export const writeText = defineStep({
  kind: "example.write",
  params: (input: { path: string; content: string }) => {
    if (!input?.path?.startsWith("/"))
      throw Object.assign(new Error("path must be absolute"), { path: "path" });
    return input;
  },
  describe: (p) => `write ${p.path}`,
  observe: async (ctx, p) => ({ content: await readOrNull(ctx.host, p.path) }),
  apply: async (ctx, p) => {
    await ctx.host.writeFile(p.path, p.content);
  },
  undo: async (ctx, p, before) => {
    if (before.content === null) await ctx.host.rm(p.path, { force: true });
    else await ctx.host.writeFile(p.path, before.content);
  },
});

async function readOrNull(host: Host, path: string): Promise<string | null> {
  try {
    return (await host.readFile(path)).toString("utf8");
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
}

import { describe, expect, it } from "vitest";
import { AtomError, atom, defineStep, HostError, isAtomError, run, StepError } from "../src/index";
import { fail, stepError } from "../src/kit";
import { tempDir, testHost } from "./_helpers";

// One error rule: whatever a kind throws (a bare Error, the kit's fail(), an AtomError of its own, the
// old stepError), the run reports one StepError naming atom, host, step, kind and phase, with every
// secret masked in its text and in its causes. The class never depends on whether the run had secrets.

const TOKEN = "tok-4c1d9e8f7a";

type Throw = "bare" | "fail" | "atom" | "host" | "legacy";

const thrower = defineStep({
  kind: "test.thrower",
  params: (p: { how: Throw; token?: string; phase: "observe" | "apply" | "undo" }) => p,
  secret: ["token"],
  observe: async (ctx, p) => {
    if (p.phase === "observe") raise(ctx, p, "observe");
    return { n: applied.get(ctx.runId) ?? 0 };
  },
  apply: async (ctx, p) => {
    if (p.phase === "apply") raise(ctx, p, "apply");
    applied.set(ctx.runId, 1);
  },
  undo: async (ctx, p) => {
    if (p.phase === "undo") raise(ctx, p, "undo");
  },
});
const applied = new Map<string, number>();

function raise(
  ctx: Parameters<typeof thrower.definition.apply>[0],
  p: { how: Throw; token?: string },
  phase: "observe" | "apply" | "undo",
): never {
  const quoted = `the server said no to ${p.token ?? "anonymous"}`;
  switch (p.how) {
    case "bare":
      throw new Error(quoted);
    case "fail":
      throw fail(quoted, { expected: "yes", found: `no for ${p.token ?? "-"}`, hint: "ask again" });
    case "atom":
      throw new AtomError("ATOM_STEP_FAILED", quoted, { expected: "yes", found: p.token ?? "-" });
    case "host":
      throw new HostError("EACCES", quoted, { stderr: `denied ${p.token ?? ""}` });
    case "legacy":
      throw stepError(ctx, "test.thrower", phase, quoted, { found: p.token ?? "-" });
  }
}

/** Every string reachable from an error: message, fields, causes (what a log of the error could show). */
function texts(error: unknown, depth = 0): string {
  if (!error || typeof error !== "object" || depth > 5) return String(error ?? "");
  const e = error as Record<string, unknown> & { cause?: unknown; stack?: string; message?: string };
  const own = Object.values(e).map((v) => (typeof v === "string" ? v : (JSON.stringify(v) ?? "")));
  return [e.message ?? "", e.stack ?? "", ...own, texts(e.cause, depth + 1)].join("\n");
}

describe("a step failure is always one StepError with its context, secrets masked", () => {
  for (const how of ["bare", "fail", "atom", "host", "legacy"] as const) {
    for (const secret of [false, true]) {
      it(`${how}${secret ? ", with a secret" : ""}`, async () => {
        const { dir, cleanup } = await tempDir();
        try {
          const host = testHost(dir);
          const params = { how, phase: "apply" as const, ...(secret ? { token: TOKEN } : {}) };
          const r = await run(atom("deploy", { steps: [thrower(params, { name: "call" })] }), { host });
          expect(r.status).toBe("rolled-back");
          const e = r.error;
          expect(e).toBeInstanceOf(StepError);
          expect(isAtomError(e)).toBe(true);
          expect(e).toMatchObject({
            code: "ATOM_STEP_FAILED",
            atom: "deploy",
            host: host.name,
            step: "call",
            kind: "test.thrower",
            phase: "apply",
          });
          expect(e!.shortMessage).toMatch(/the server said no to/);
          // the engine's context is not repeated inside the short message
          expect(e!.shortMessage).not.toMatch(/\[atomkit\]|step "call"/);
          if (how === "fail") {
            expect(e).toMatchObject({ expected: "yes", hint: "ask again" });
            expect(e!.shortMessage).not.toMatch(/apply failed/);
          }
          if (how === "host") expect(e!.cause).toBeInstanceOf(HostError);
          if (secret) {
            expect(texts(e)).not.toContain(TOKEN);
            expect(e!.message).toContain("***");
          }
        } finally {
          await cleanup();
        }
      });
    }
  }

  it("in observe and undo too, each naming its own phase", async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const host = testHost(dir);
      const seen = await run(
        atom("deploy", { steps: [thrower({ how: "fail", phase: "observe", token: TOKEN }, { name: "s" })] }),
        { host },
      );
      expect(seen.error).toBeInstanceOf(StepError);
      expect(seen.error).toMatchObject({ phase: "observe", step: "s", atom: "deploy" });
      const failing = defineStep({
        kind: "test.fails",
        params: (p: object) => p,
        observe: async () => null,
        apply: async () => {
          throw new Error("boom");
        },
        undo: async () => {},
      });
      const r = await run(
        atom("deploy", {
          steps: [
            thrower({ how: "legacy", phase: "undo", token: TOKEN }, { name: "s" }),
            failing({}, { name: "f" }),
          ],
        }),
        { host },
      );
      expect(r.status).toBe("rollback-failed");
      const failed = (r.error as unknown as { failed: AtomError }).failed;
      expect(failed).toBeInstanceOf(StepError);
      expect(failed).toMatchObject({ phase: "undo", step: "s", kind: "test.thrower", atom: "deploy" });
      expect(texts(r.error)).not.toContain(TOKEN);
    } finally {
      await cleanup();
    }
  });
});

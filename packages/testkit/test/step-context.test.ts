import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineStep, localHost } from "@atomkit/core";
import { MASK } from "@atomkit/core/kit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { bindStep, stepContext } from "../src/index";
import { writeText } from "./fixtures/kinds.mjs";

describe("stepContext", () => {
  let stateDir: string | undefined;
  it("defaults to a local host with its own temp state dir, a live signal and names", async () => {
    const ctx = stepContext();
    expect(ctx.host.local).toBe(true);
    expect(existsSync(ctx.host.stateDir)).toBe(true);
    expect(ctx.signal.aborted).toBe(false);
    expect([ctx.runId, ctx.step]).toEqual(["test", "under-test"]);
    stateDir = ctx.host.stateDir;
  });
  it("(the state dir of the test before is removed when that test ended)", () => {
    expect(stateDir).toBeTypeOf("string");
    expect(existsSync(stateDir as string)).toBe(false);
  });

  it("redact masks the given secrets as the engine does; log lines are kept, masked", () => {
    const seen: string[] = [];
    const ac = new AbortController();
    const host = localHost({ stateDir: tmpdir() });
    const ctx = stepContext({
      host,
      signal: ac.signal,
      secrets: ["hunter22"],
      runId: "r1",
      step: "s",
      log: (m) => seen.push(m),
    });
    expect(ctx.host).toBe(host);
    expect(ctx.signal).toBe(ac.signal);
    expect(ctx.redact({ url: "postgres://u:hunter22@db", n: 1 })).toEqual({
      url: `postgres://u:${MASK}@db`,
      n: 1,
    });
    ctx.log("login with 'hunter22'");
    expect(ctx.logs).toEqual([`login with '${MASK}'`]);
    expect(seen).toEqual(ctx.logs);
  });
});

describe("bindStep", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "atomkit-bind-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("calls the kind's observe, apply and undo with the validated params and the step's name", async () => {
    const path = join(dir, "motd");
    await writeFile(path, "old");
    const b = await bindStep(writeText({ path, content: "new" }, { name: "motd" }), {
      host: localHost({ stateDir: join(dir, ".state") }),
    });
    expect(b.ctx.step).toBe("motd");
    const before = await b.observe();
    await b.apply(before);
    expect(await readFile(path, "utf8")).toBe("new");
    expect(b.same(await b.observe(), before)).toBe(false);
    await b.undo(before, await b.observe());
    expect(await readFile(path, "utf8")).toBe("old");
    await b.cleanup(); // no cleanup in this kind: nothing happens
  });

  it("masks the step's secret params in redact and logs", async () => {
    const login = defineStep({
      kind: "test.login",
      params: (p: { user: string; password: string }) => p,
      secret: ["password"],
      observe: async (ctx, p) => {
        ctx.log(`as ${p.user} with ${p.password}`);
        return null;
      },
      apply: async () => {},
      undo: async () => {},
    });
    const b = await bindStep(login({ user: "deploy", password: "s3cret-pw" }));
    await b.observe();
    expect(b.ctx.logs).toEqual([`as deploy with ${MASK}`]);
    expect(b.ctx.redact({ dsn: "deploy:s3cret-pw" })).toEqual({ dsn: `deploy:${MASK}` });
  });

  it("refuses params the kind rejects, naming the step and the field", async () => {
    const error = await bindStep(writeText({ path: "relative", content: "x" }, { name: "motd" })).catch(
      (e) => e,
    );
    expect(error.message).toMatch(/params of step "motd" \(example\.write\) are invalid: .*"path"/);
  });
});

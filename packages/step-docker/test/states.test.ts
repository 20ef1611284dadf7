// What a docker state means: what serves is compared, ids and times are evidence. Against the real
// dockerd: a rolled-back later run is no drift for an earlier one, a pruned or changed previous
// container fails undo loudly before anything changes, and two observations of the same serving thing
// are the same state.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  atom,
  fileTrail,
  localHost,
  memoryTrail,
  run,
  type StepContext,
  undoRun,
  validateParams,
} from "@atomkit/core";
import { stepContext } from "@atomkit/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pruneContainers, runContainer, steps, swapContainer } from "../src/index";
import {
  answer,
  conn,
  containers,
  docker,
  filePrefix,
  freePort,
  HEALTHY_MS,
  httpd,
  noDocker,
  removeAll,
  startByHand,
  uniqueName,
  V1,
  V2,
  waitAnswer,
} from "./_fixtures";

const PREFIX = filePrefix("state");
let stateDir = "";
const host = () => localHost({ stateDir });

/** Binds a step as the engine would and observes it once. */
async function observe(step: ReturnType<typeof swapContainer> | ReturnType<typeof runContainer>) {
  const v = await validateParams(step);
  if (v.issues) throw new Error(JSON.stringify(v.issues));
  const ctx: StepContext = stepContext({ host: host(), runId: "test", step: step.name });
  const d = step.definition as unknown as {
    observe: (c: StepContext, p: unknown) => Promise<unknown>;
    same: (a: unknown, b: unknown) => boolean;
  };
  return { state: await d.observe(ctx, v.value), same: d.same };
}

describe.skipIf(noDocker)("docker states: what serves, with ids as evidence", () => {
  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "atk-docker-state-"));
  });
  afterAll(async () => {
    await removeAll(PREFIX);
    await rm(stateDir, { recursive: true, force: true, maxRetries: 10 });
  });

  for (const order of ["stop-first", "start-first"] as const) {
    it(`${order}: after a later swap failed and was rolled back, undo of the earlier run restores v1 (no drift, no force)`, async () => {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      // start-first: each new container listens on its own port while the old one still serves
      const p2 = order === "start-first" ? await freePort() : port;
      const v1Id = await startByHand(name, V1, port);
      const trailDir = await mkdtemp(join(tmpdir(), "atk-trail-"));
      const trail = fileTrail({ dir: trailDir });
      const swap = (image: string, cmd: string[], p: number, timeoutMs: number) =>
        swapContainer({
          docker: conn,
          name,
          image,
          cmd,
          order,
          init: true,
          stopTimeoutMs: 1000,
          health: { http: { port: p }, timeoutMs },
        });

      const a = await run(atom("web", { steps: [swap(V2, httpd(p2), p2, HEALTHY_MS)] }), {
        host: host(),
        trail,
        lock: false,
      });
      expect(a.status, a.error?.message).toBe("committed");
      expect(await answer(p2)).toBe("atomkit-test busybox v2");

      // v3 never answers: its health check fails and the swap is rolled back, verified (start-first:
      // checked on a port of its own, as the old one still answers on p2)
      const p3 = order === "start-first" ? await freePort() : p2;
      const b = await run(atom("web", { steps: [swap(V1, ["sleep", "60"], p3, 1500)] }), {
        host: host(),
        trail,
        lock: false,
        backoffMs: 1,
      });
      expect(b.status, b.error?.message).toBe("rolled-back");
      if (order === "stop-first") expect(b.steps[0]).toMatchObject({ status: "undone", verified: true });
      else expect(b.steps[0]?.status).toBe("failed-unchanged"); // the old one served throughout
      expect(await waitAnswer(p2)).toBe("atomkit-test busybox v2");

      const u = await undoRun(trail, a.runId, { host: host(), steps: [...steps], lock: false });
      expect(u.status, u.error?.message).toBe("rolled-back");
      expect(u.steps[0]).toMatchObject({ status: "undone", verified: true });
      expect(await waitAnswer(port)).toBe("atomkit-test busybox v1");
      expect((await containers(name)).map((x) => [x.name, x.id, x.running])).toEqual([[name, v1Id, true]]);
      await rm(trailDir, { recursive: true, force: true, maxRetries: 10 });
    });
  }

  it("same(): a restarted container and an identical re-created one are the same state; a changed env is not", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    const spec = (token: string) =>
      runContainer({
        docker: conn,
        name,
        image: V1,
        cmd: httpd(port),
        env: { TOKEN: token, MODE: "prod" },
        init: true,
        stopTimeoutMs: 1000,
        health: { http: { port } },
      });
    const r = await run(atom("x", { steps: [spec("s3cret-value-1")] }), { host: host(), lock: false });
    expect(r.status, r.error?.message).toBe("committed");
    const first = await observe(spec("s3cret-value-1"));
    // a real state passes the kind's own check of trail states, unchanged
    const check = runContainer.definition.state as (v: unknown) => unknown;
    expect(check(JSON.parse(JSON.stringify(first.state)))).toEqual(first.state);
    // env values never reach a state (nor the trail): names and a digest only
    expect(JSON.stringify(first.state)).not.toContain("s3cret-value-1");
    expect((first.state as { current: { env: { names: string[] } } }).current.env.names).toEqual([
      "MODE",
      "PATH",
      "TOKEN",
    ]);

    await docker.getContainer(name).restart({ t: 1 });
    await waitAnswer(port);
    const restarted = await observe(spec("s3cret-value-1"));
    expect(restarted.state).not.toEqual(first.state); // the evidence moved (start time)
    expect(first.same(first.state, restarted.state)).toBe(true);

    // the same config in a new container (another id): still the same serving thing
    await removeAll(name);
    const again = await run(atom("x", { steps: [spec("s3cret-value-1")] }), { host: host(), lock: false });
    expect(again.status, again.error?.message).toBe("committed");
    const recreated = await observe(spec("s3cret-value-1"));
    expect(first.same(first.state, recreated.state)).toBe(true);

    await removeAll(name);
    const other = await run(atom("x", { steps: [spec("s3cret-value-2")] }), { host: host(), lock: false });
    expect(other.status, other.error?.message).toBe("committed");
    expect(first.same(first.state, (await observe(spec("s3cret-value-2"))).state)).toBe(false);
  });

  it("undo of a swap whose previous container was pruned fails loudly and changes nothing", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    await startByHand(name, V1, port);
    const store = memoryTrail();
    const step = swapContainer({
      docker: conn,
      name,
      image: V2,
      cmd: httpd(port),
      init: true,
      stopTimeoutMs: 1000,
      health: { http: { port } },
    });
    const r = await run(atom("web", { steps: [step] }), { host: host(), trail: store, lock: false });
    expect(r.status, r.error?.message).toBe("committed");
    expect((await pruneContainers({ docker: conn, name, keep: 0 })).removed).toEqual([
      `${name}-prev-${r.runId}`,
    ]);
    const seen = await containers(name);
    const u = await undoRun(store, r.runId, { host: host(), steps: [...steps], lock: false, backoffMs: 1 });
    expect(u.status).toBe("rollback-failed");
    expect(u.error?.message).toContain("the previous container of");
    expect(u.error?.message).toContain("is gone");
    expect(u.error?.message).toContain("redeploy the previous image");
    expect(await containers(name)).toEqual(seen);
    expect(await answer(port)).toBe("atomkit-test busybox v2");
  });

  it("undo refuses a previous container that was changed since (docker update), before changing anything", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    await startByHand(name, V1, port);
    const store = memoryTrail();
    const step = swapContainer({
      docker: conn,
      name,
      image: V2,
      cmd: httpd(port),
      init: true,
      stopTimeoutMs: 1000,
      health: { http: { port } },
    });
    const r = await run(atom("web", { steps: [step] }), { host: host(), trail: store, lock: false });
    expect(r.status, r.error?.message).toBe("committed");
    await docker.getContainer(`${name}-prev-${r.runId}`).update({ RestartPolicy: { Name: "always" } });
    const seen = await containers(name);
    const u = await undoRun(store, r.runId, { host: host(), steps: [...steps], lock: false, backoffMs: 1 });
    expect(u.status).toBe("rollback-failed");
    expect(u.error?.message).toContain("is not the one");
    expect(u.error?.message).toContain("restart");
    expect(await containers(name)).toEqual(seen);
    expect(await answer(port)).toBe("atomkit-test busybox v2");
  });

  it("a forged trail naming another service's container removes nothing", async () => {
    const name = uniqueName(PREFIX);
    const victim = uniqueName(PREFIX);
    const [port, vport] = [await freePort(), await freePort()];
    await startByHand(name, V1, port);
    // another service deployed by these steps: it carries Atomkit's labels
    const made = await run(
      atom("other", {
        steps: [runContainer({ docker: conn, name: victim, image: V1, cmd: httpd(vport), init: true })],
      }),
      { host: host(), lock: false },
    );
    expect(made.status, made.error?.message).toBe("committed");
    const store = memoryTrail();
    const step = swapContainer({
      docker: conn,
      name,
      image: V2,
      cmd: httpd(port),
      init: true,
      stopTimeoutMs: 1000,
      health: { http: { port } },
    });
    const r = await run(atom("web", { steps: [step] }), { host: host(), trail: store, lock: false });
    expect(r.status, r.error?.message).toBe("committed");
    const victimId = (await docker.getContainer(victim).inspect()).Id;
    const after = r.steps[0]?.after as { evidence: { pending: unknown[] } };
    const forged = {
      ...after,
      evidence: { pending: [{ id: victimId, name: victim, running: true, run: made.runId }] },
    };
    const v = await validateParams(step);
    const ctx: StepContext = stepContext({ host: host(), runId: "forged", step: "docker.swap" });
    const error = await step.definition
      .undo(ctx, (v as { value: unknown }).value as never, r.steps[0]?.before as never, forged as never)
      .catch((e) => e);
    expect(error?.message).toContain("another service");
    // the right-looking name on the victim's id: the container's own labels refuse it
    const disguised = {
      ...after,
      evidence: { pending: [{ id: victimId, name: `${name}-next-x`, running: true, run: made.runId }] },
    };
    const again = await step.definition
      .undo(ctx, (v as { value: unknown }).value as never, r.steps[0]?.before as never, disguised as never)
      .catch((e) => e);
    expect(again?.message).toContain("not created by Atomkit");
    expect((await containers(victim)).map((x) => x.running)).toEqual([true]);
    expect(await answer(port)).toBe("atomkit-test busybox v2");
  });
});

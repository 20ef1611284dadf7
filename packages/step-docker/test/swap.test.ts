import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atom, fileTrail, localHost, memoryTrail, ParamsError, recover, run, undoRun } from "@atomkit/core";
import { describeStepContract, HOSTILE_STRINGS } from "@atomkit/testkit";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { pruneContainers, steps, swapContainer } from "../src/index";
import {
  answer,
  conn,
  containers,
  docker,
  filePrefix,
  freePort,
  growingBudget,
  HEALTHY_MS,
  httpd,
  noDocker,
  PATIENCE_MS,
  picture,
  reach,
  removeAll,
  startByHand,
  uniqueName,
  V1,
  V2,
  waitAnswer,
} from "./_fixtures";

const PREFIX = filePrefix("swap");
let stateDir = "";
const host = () => localHost({ stateDir });

/** v2 on the same port; a flag file in `flags` makes it exit at once (breakApply). */
function v2(name: string, port: number, flags: string, extra: Record<string, unknown> = {}) {
  return swapContainer({
    docker: conn,
    name,
    image: V2,
    cmd: [
      "sh",
      "-c",
      'test -e /flags/broken && exit 3; exec httpd -f -p "127.0.0.1:$1" -h /www',
      "sh",
      String(port),
    ],
    mounts: [{ source: flags, target: "/flags", readOnly: true }],
    init: true,
    stopTimeoutMs: 2000,
    health: { http: { port, expect: { body: "v2" } }, timeoutMs: HEALTHY_MS },
    ...extra,
  });
}

/** Containers with Atomkit's labels for this service (what leftovers would be). */
async function labelled(name: string) {
  const list = await docker.listContainers({ all: true, filters: { label: [`org.atomkit.name=${name}`] } });
  return list.map((x) => x.Names[0]?.slice(1));
}

describe.skipIf(noDocker)("docker.swap against a real dockerd", () => {
  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "atk-docker-state-"));
  });
  afterAll(async () => {
    await removeAll(PREFIX);
    await rm(stateDir, { recursive: true, force: true, maxRetries: 10 });
  });

  const fixture = async (order: "stop-first" | "start-first") => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    // start-first: the new container listens on a port of its own
    const newPort = order === "start-first" ? await freePort() : port;
    const flags = await mkdtemp(join(tmpdir(), "atk-flags-"));
    await startByHand(name, V1, port);
    return {
      host: host(),
      step: () => v2(name, newPort, flags, { order }),
      snapshot: () => picture(name, port),
      breakApply: () => writeFile(join(flags, "broken"), "x"),
      cleanup: async () => {
        await removeAll(name);
        await rm(flags, { recursive: true, force: true, maxRetries: 10 });
      },
    };
  };

  describeStepContract({ name: "docker.swap stop-first (contract)", setup: () => fixture("stop-first") });
  // start-first: a new container that fails its health never served and the old one was not touched,
  // so apply removes it and check finds nothing changed
  describeStepContract({
    name: "docker.swap start-first (contract)",
    setup: () => fixture("start-first"),
    breakApplyLeaves: "unchanged",
  });

  describe("swaps", () => {
    it("v1 → v2 commits: v2 answers, v1 is kept stopped as <name>-prev-<runId>, prune keeps the last N", async () => {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      const flags = await mkdtemp(join(tmpdir(), "atk-flags-"));
      const v1Id = await startByHand(name, V1, port);
      const r = await run(atom("release", { steps: [v2(name, port, flags)] }), { host: host(), lock: false });
      expect(r.status, r.error?.message).toBe("committed");
      expect(await answer(port)).toBe("atomkit-test busybox v2");
      const after = await containers(name);
      expect(after.map((x) => [x.name, x.running])).toEqual([
        [name, true],
        [`${name}-prev-${r.runId}`, false],
      ]);
      expect(after[1]?.id).toBe(v1Id);
      const live = await docker.getContainer(name).inspect();
      expect(live.Config.Labels).toMatchObject({
        "org.atomkit.kind": "docker.swap",
        "org.atomkit.run": r.runId,
        "org.atomkit.name": name,
      });

      // a second release retires the first v2; prune keeps only the newest retired container
      const r2 = await run(atom("release", { steps: [v2(name, port, flags)] }), {
        host: host(),
        lock: false,
      });
      expect(r2.status, r2.error?.message).toBe("committed");
      expect((await containers(name)).length).toBe(3);
      const pruned = await pruneContainers({ docker: conn, name, keep: 1 });
      expect(pruned).toEqual({ removed: [`${name}-prev-${r.runId}`], kept: [`${name}-prev-${r2.runId}`] });
      // the last run can still be undone: its previous container was kept (r3 changes the env: the
      // very same config again would be no change of what serves)
      const store = memoryTrail();
      const r3 = await run(atom("release", { steps: [v2(name, port, flags, { env: { RELEASE: "3" } })] }), {
        host: host(),
        trail: store,
        lock: false,
      });
      expect(r3.status).toBe("committed");
      const u = await undoRun(store, r3.runId, { host: host(), steps: [...steps], lock: false });
      expect(u.status, u.error?.message).toBe("rolled-back");
      expect(await answer(port)).toBe("atomkit-test busybox v2");
      await rm(flags, { recursive: true, force: true, maxRetries: 10 });
    });

    it("v1 → broken v2 (health fails) rolls back: v1 running and answering, no leftover containers", async () => {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      const v1Id = await startByHand(name, V1, port);
      const before = await containers(name);
      const broken = swapContainer({
        docker: conn,
        name,
        image: V2,
        cmd: ["sleep", "60"], // never listens
        init: true,
        stopTimeoutMs: 1000,
        health: { http: { port }, timeoutMs: 1500 },
      });
      const r = await run(atom("release", { steps: [broken] }), { host: host(), lock: false, backoffMs: 1 });
      expect(r.status, r.error?.message).toBe("rolled-back");
      expect(r.steps[0]).toMatchObject({ status: "undone", verified: true });
      expect(r.error?.message).toContain("was not healthy within 1500 ms");
      expect(await answer(port)).toBe("atomkit-test busybox v1");
      expect(await containers(name)).toEqual(before);
      expect(before[0]?.id).toBe(v1Id);
      expect(await labelled(name)).toEqual([]);
    });

    it("a new container that exits at once fails fast with its exit code and output", async () => {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      await startByHand(name, V1, port);
      const before = await containers(name);
      const crashing = swapContainer({
        docker: conn,
        name,
        image: V2,
        cmd: ["sh", "-c", "echo config file missing >&2; exit 7"],
        // the exit ends the wait: a long budget costs nothing and no loaded box outlasts it
        health: { http: { port }, timeoutMs: HEALTHY_MS },
      });
      const r = await run(atom("release", { steps: [crashing] }), {
        host: host(),
        lock: false,
        backoffMs: 1,
      });
      expect(r.status).toBe("rolled-back");
      // "exited", not "not healthy within": it did not wait for the health timeout
      expect(r.error?.message).toContain("exited before it was healthy");
      expect(r.error?.message).toContain("exited with code 7");
      expect(r.error?.message).toContain("config file missing");
      expect(await answer(port)).toBe("atomkit-test busybox v1");
      expect(await containers(name)).toEqual(before);
    });

    it("start-first: at every moment one of the two ports answers, for the swap and for its undo", async () => {
      const name = uniqueName(PREFIX);
      const [p1, p2] = [await freePort(), await freePort()];
      await startByHand(name, V1, p1);
      const flags = await mkdtemp(join(tmpdir(), "atk-flags-"));
      let refusedBoth = 0;
      let polls = 0;
      let polling = true;
      // a connection refused on both ports is the only thing counted (a slow answer is not a gap: on a
      // loaded box it says nothing): no timing involved
      const poller = (async () => {
        while (polling) {
          const [a, b] = await Promise.all([reach(p1, 2000), reach(p2, 2000)]);
          polls++;
          const refused = (x: typeof a) => typeof x !== "string" && "refused" in x;
          if (refused(a) && refused(b)) refusedBoth++;
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      const store = memoryTrail();
      const r = await run(atom("release", { steps: [v2(name, p2, flags, { order: "start-first" })] }), {
        host: host(),
        trail: store,
        lock: false,
      });
      expect(r.status, r.error?.message).toBe("committed");
      expect(await answer(p2)).toBe("atomkit-test busybox v2");
      expect(await answer(p1)).toBeNull();
      const u = await undoRun(store, r.runId, { host: host(), steps: [...steps], lock: false });
      expect(u.status, u.error?.message).toBe("rolled-back");
      polling = false;
      await poller;
      expect(polls).toBeGreaterThan(3);
      expect(refusedBoth).toBe(0);
      expect(await answer(p1)).toBe("atomkit-test busybox v1");
      expect(await answer(p2)).toBeNull();
      await rm(flags, { recursive: true, force: true, maxRetries: 10 });
    });

    it('start-first with network "none" and an exec health check, on the same port as the old one', async () => {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      await startByHand(name, V1, port);
      const before = await containers(name);
      const isolated = (image: string, cmd: string[], timeoutMs: number) =>
        swapContainer({
          docker: conn,
          name,
          image,
          cmd,
          network: "none",
          order: "start-first",
          init: true,
          stopTimeoutMs: 1000,
          health: { exec: ["wget", "-q", "-O", "-", `http://127.0.0.1:${port}/`], timeoutMs },
        });
      const ok = await run(atom("release", { steps: [isolated(V2, httpd(port), HEALTHY_MS)] }), {
        host: host(),
        lock: false,
      });
      expect(ok.status, ok.error?.message).toBe("committed");
      const live = await docker.getContainer(name).inspect();
      expect([live.HostConfig.NetworkMode, live.Config.Image, live.State.Running]).toEqual([
        "none",
        V2,
        true,
      ]);
      // the old one served on the host port until the new one was healthy in its own namespace
      // the error quotes the last probe: a budget long enough for `docker exec` to have run it once
      const bad = await growingBudget(
        1500,
        (ms) =>
          run(atom("release", { steps: [isolated(V1, ["sleep", "60"], ms)] }), {
            host: host(),
            lock: false,
            backoffMs: 1,
          }),
        (r) => (r.error?.message ?? "").includes("exit code"),
      );
      expect(bad.status, bad.error?.message).toBe("rolled-back");
      expect(bad.error?.message).toContain("exit code");
      expect((await docker.getContainer(name).inspect()).Config.Image).toBe(V2);
      expect((await containers(name)).length).toBe(before.length + 1); // v2 current, v1 kept as prev
    });

    it("waits for Docker's own HEALTHCHECK when asked", async () => {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      await startByHand(name, V1, port);
      const step = swapContainer({
        docker: conn,
        name,
        image: V2,
        cmd: httpd(port),
        init: true,
        stopTimeoutMs: 1000,
        healthcheck: {
          test: ["wget", "-q", "-O", "/dev/null", `http://127.0.0.1:${port}/`],
          intervalMs: 200,
          // Docker counts a probe slower than this as failed: on a loaded box one may take seconds
          timeoutMs: 30_000,
          retries: 3,
        },
        health: { docker: true, timeoutMs: HEALTHY_MS },
      });
      const r = await run(atom("release", { steps: [step] }), { host: host(), lock: false });
      expect(r.status, r.error?.message).toBe("committed");
      const live = await docker.getContainer(name).inspect();
      expect(live.State.Health?.Status).toBe("healthy");
      expect(await answer(port)).toBe("atomkit-test busybox v2");
    });
  });

  describe("ugly paths", () => {
    it("bad params are refused before anything runs, naming the field", async () => {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      await startByHand(name, V1, port);
      const before = await containers(name);
      const cases: Array<[Record<string, unknown>, string]> = [
        ...HOSTILE_STRINGS.filter((s) => !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(s)).map(
          (s) => [{ name: s }, "name"] as [Record<string, unknown>, string],
        ),
        [{ cmd: "httpd -f" }, "cmd"],
        [{ network: "bridge" }, "network"],
        [{ order: "blue-green" }, "order"],
        [{ stopTimeout: 5 }, "stopTimeout"],
        [{ health: { http: { port }, tcp: { port } } }, "health"],
        [{ health: { http: { port, path: "/ HTTP/1.0\r\nX: y" } } }, "health.http.path"],
        [{ env: { "A B": "x" } }, "env.A B"],
        [{ labels: { "org.atomkit.run": "x" } }, "labels.org.atomkit.run"],
        [{ mounts: [{ source: "relative", target: "/x" }] }, "mounts.0.source"],
        [{ docker: { protocol: "tcp", host: "x" } }, "docker.protocol"],
      ];
      for (const [patch, path] of cases) {
        const step = swapContainer({ docker: conn, name, image: V2, cmd: httpd(port), ...patch } as never);
        const error = await run(atom("bad", { steps: [step] }), { host: host(), lock: false }).catch(
          (e) => e,
        );
        expect(error, JSON.stringify(patch)).toBeInstanceOf(ParamsError);
        expect((error as ParamsError).issues[0]?.path, JSON.stringify(patch)).toBe(path);
      }
      expect(await containers(name)).toEqual(before);
      expect(await answer(port)).toBe("atomkit-test busybox v1");
    });

    it("a missing image fails before any container is touched (failed-unchanged)", async () => {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      await startByHand(name, V1, port);
      const before = await containers(name);
      const step = swapContainer({
        docker: conn,
        name,
        image: "atomkit-test/no-such-image:0",
        cmd: httpd(port),
      });
      const r = await run(atom("release", { steps: [step] }), { host: host(), lock: false });
      expect(r.status).toBe("rolled-back");
      expect(r.steps[0]?.status).toBe("failed-unchanged");
      expect(r.error?.message).toContain("docker.image");
      expect(await containers(name)).toEqual(before);
    });

    it("drift: a committed swap whose container was changed by hand is not undone", async () => {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      const flags = await mkdtemp(join(tmpdir(), "atk-flags-"));
      await startByHand(name, V1, port);
      const store = memoryTrail();
      const r = await run(atom("release", { steps: [v2(name, port, flags)] }), {
        host: host(),
        trail: store,
        lock: false,
      });
      expect(r.status).toBe("committed");
      await docker.getContainer(name).stop({ t: 1 });
      const seen = await containers(name);
      const error = await undoRun(store, r.runId, { host: host(), steps: [...steps], lock: false }).catch(
        (e) => e,
      );
      expect(error).toMatchObject({ code: "ATOM_DRIFT" });
      expect(await containers(name)).toEqual(seen);
      await rm(flags, { recursive: true, force: true, maxRetries: 10 });
    });

    it("the deploying process killed (-9) mid-swap: recover rolls back from the trail alone", async () => {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      await startByHand(name, V1, port);
      const before = await containers(name);
      const trailDir = await mkdtemp(join(tmpdir(), "atk-trail-"));
      const child = spawn(process.execPath, [join(import.meta.dirname, "crash-child.mjs")], {
        env: {
          ...process.env,
          TRAIL: trailDir,
          NAME: name,
          PORT: String(port),
          IMAGE: V2,
          SOCKET: conn.socketPath,
          STATE: stateDir,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      // also when the test fails or times out: no deployer left running
      onTestFinished(() => {
        child.kill("SIGKILL");
      });
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
      });
      child.stderr.on("data", (d) => {
        out += d;
      });
      // wait until the new container runs (the old one is stopped): the middle of the swap
      const deadline = Date.now() + PATIENCE_MS;
      while (!out.includes("waiting for it to be healthy")) {
        if (Date.now() > deadline || child.exitCode !== null)
          throw new Error(`child did not reach the swap: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      expect(await answer(port, 300)).toBeNull(); // stop-first: nothing serves now
      const [file] = await readdir(trailDir);
      expect(await readFile(join(trailDir, file!), "utf8")).toContain('"applying"');

      const [rec] = await recover(fileTrail({ dir: trailDir }), {
        host: host(),
        steps: [...steps],
        lock: false,
      });
      expect(rec?.found).toBe("died-while-applying");
      expect(rec?.status, rec?.error?.message).toBe("rolled-back");
      expect(await waitAnswer(port)).toBe("atomkit-test busybox v1");
      expect(await containers(name)).toEqual(before);
      await rm(trailDir, { recursive: true, force: true, maxRetries: 10 });
    });
  });
});

import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atom, localHost, memoryTrail, run, undoRun } from "@atomkit/core";
import { describeStepContract, HOSTILE_STRINGS } from "@atomkit/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pruneContainers, removeContainer, runContainer, steps, stopContainer } from "../src/index";
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
  picture,
  removeAll,
  startByHand,
  uniqueName,
  V1,
  V2,
  waitAnswer,
} from "./_fixtures";

const PREFIX = filePrefix("ctr");
let stateDir = "";
const host = () => localHost({ stateDir });

describe.skipIf(noDocker)("docker.run / docker.stop / docker.remove against a real dockerd", () => {
  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "atk-docker-state-"));
  });
  afterAll(async () => {
    await removeAll(PREFIX);
    await rm(stateDir, { recursive: true, force: true, maxRetries: 10 });
  });

  describeStepContract({
    name: "docker.run (contract)",
    idempotent: true,
    async setup() {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      const flags = await mkdtemp(join(tmpdir(), "atk-flags-"));
      return {
        host: host(),
        step: () =>
          runContainer({
            docker: conn,
            name,
            image: V1,
            cmd: [
              "sh",
              "-c",
              'test -e /flags/broken && exit 3; exec httpd -f -p "127.0.0.1:$1" -h /www',
              "sh",
              String(port),
            ],
            mounts: [{ source: flags, target: "/flags", readOnly: true }],
            init: true,
            stopTimeoutMs: 1000,
            health: { http: { port, expect: { body: "v1" } }, timeoutMs: HEALTHY_MS },
          }),
        snapshot: () => picture(name, port),
        breakApply: () => writeFile(join(flags, "broken"), "x"),
        cleanup: async () => {
          await removeAll(name);
          await rm(flags, { recursive: true, force: true, maxRetries: 10 });
        },
      };
    },
  });

  describeStepContract({
    name: "docker.stop (contract)",
    idempotent: true,
    async setup() {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      await startByHand(name, V1, port);
      return {
        host: host(),
        step: () => stopContainer({ docker: conn, name, stopTimeoutMs: 1000, health: { http: { port } } }),
        snapshot: () => picture(name, port),
        cleanup: () => removeAll(name),
      };
    },
  });

  describeStepContract({
    name: "docker.remove (contract)",
    idempotent: true,
    async setup() {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      await startByHand(name, V1, port);
      return {
        host: host(),
        step: () => removeContainer({ docker: conn, name, stopTimeoutMs: 1000, health: { tcp: { port } } }),
        snapshot: () => picture(name, port),
        cleanup: () => removeAll(name),
      };
    },
  });

  it("run → stop → remove commits, and undo from the trail brings everything back", async () => {
    const [a, b, c] = [uniqueName(PREFIX), uniqueName(PREFIX), uniqueName(PREFIX)];
    const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
    await startByHand(b, V1, pb);
    await startByHand(c, V1, pc);
    const store = memoryTrail();
    const r = await run(
      atom("release", {
        steps: [
          runContainer(
            {
              docker: conn,
              name: a,
              image: V1,
              cmd: httpd(pa),
              init: true,
              stopTimeoutMs: 1000,
              health: { http: { port: pa } },
            },
            { name: "run a" },
          ),
          stopContainer(
            { docker: conn, name: b, stopTimeoutMs: 1000, health: { http: { port: pb } } },
            { name: "stop b" },
          ),
          removeContainer({ docker: conn, name: c, stopTimeoutMs: 1000 }, { name: "remove c" }),
        ],
      }),
      { host: host(), trail: store, lock: false },
    );
    expect(r.status, r.error?.message).toBe("committed");
    expect(await answer(pa)).toBe("atomkit-test busybox v1");
    expect([await answer(pb, 300), await answer(pc, 300)]).toEqual([null, null]);
    expect((await containers(c)).map((x) => [x.name, x.running])).toEqual([
      [`${c}-removed-${r.runId}`, false],
    ]);
    const u = await undoRun(store, r.runId, { host: host(), steps: [...steps], lock: false });
    expect(u.status, u.error?.message).toBe("rolled-back");
    expect(await containers(a)).toEqual([]);
    expect((await containers(b)).map((x) => [x.name, x.running])).toEqual([[b, true]]);
    expect((await containers(c)).map((x) => [x.name, x.running])).toEqual([[c, true]]);
    expect(await answer(pb)).toBe("atomkit-test busybox v1");
    expect(await waitAnswer(pc)).toBe("atomkit-test busybox v1");
  });

  it("steps of one atom on the same container (run, then stop it) undo cleanly from the trail", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    const store = memoryTrail();
    const spec = { docker: conn, name, image: V1, cmd: httpd(port), init: true, stopTimeoutMs: 1000 };
    const r = await run(
      atom("x", {
        steps: [
          runContainer({ ...spec, health: { http: { port } } }, { name: "run" }),
          stopContainer({ docker: conn, name, stopTimeoutMs: 1000 }, { name: "stop" }),
        ],
      }),
      { host: host(), trail: store, lock: false },
    );
    expect(r.status, r.error?.message).toBe("committed");
    expect((await containers(name)).map((x) => x.running)).toEqual([false]);
    const u = await undoRun(store, r.runId, { host: host(), steps: [...steps], lock: false });
    expect(u.status, u.error?.message).toBe("rolled-back");
    expect(await containers(name)).toEqual([]);
  });

  it("ids are evidence: undo of docker.stop starts the same service re-created meanwhile; another one is drift", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    await startByHand(name, V1, port);
    const store = memoryTrail();
    const stop = stopContainer({ docker: conn, name, stopTimeoutMs: 1000, health: { http: { port } } });
    const r = await run(atom("x", { steps: [stop] }), { host: host(), trail: store, lock: false });
    expect(r.status, r.error?.message).toBe("committed");
    // someone re-creates the very same service (stopped, as the stop left it): a new id, same state
    await removeAll(name);
    const again = await startByHand(name, V1, port);
    await docker.getContainer(again).stop({ t: 1 });
    const u = await undoRun(store, r.runId, { host: host(), steps: [...steps], lock: false });
    expect(u.status, u.error?.message).toBe("rolled-back");
    expect(u.steps[0]).toMatchObject({ status: "undone", verified: true });
    expect((await containers(name)).map((x) => [x.id, x.running])).toEqual([[again, true]]);

    // a different service under the name (another image) is not what the run stopped: drift
    const r2 = await run(atom("x", { steps: [stop] }), { host: host(), trail: store, lock: false });
    expect(r2.status, r2.error?.message).toBe("committed");
    await removeAll(name);
    const other = await startByHand(name, V2, port);
    await docker.getContainer(other).stop({ t: 1 });
    const d = await undoRun(store, r2.runId, { host: host(), steps: [...steps], lock: false }).catch(
      (e) => e,
    );
    expect(d).toMatchObject({ code: "ATOM_DRIFT" });
    expect((await containers(name)).map((x) => [x.id, x.running])).toEqual([[other, false]]);
  });

  it("docker.run refuses a name that is taken, before touching anything", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    await startByHand(name, V1, port);
    const before = await containers(name);
    const r = await run(
      atom("x", { steps: [runContainer({ docker: conn, name, image: V1, cmd: httpd(port) })] }),
      {
        host: host(),
        lock: false,
      },
    );
    expect(r.steps[0]?.status).toBe("failed-unchanged");
    expect(r.error?.message).toContain("docker.swap");
    expect(await containers(name)).toEqual(before);
  });

  it("cmd and env words reach the container literally, hostile ones included", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    const env = Object.fromEntries(HOSTILE_STRINGS.map((s, i) => [`V${i}`, s]));
    const script = [
      'printf "%s\\0" "$@" > /www/args',
      "cat /proc/$$/environ > /www/env",
      'exec httpd -f -p "127.0.0.1:$PORT" -h /www',
    ].join("\n");
    const step = runContainer({
      docker: conn,
      name,
      image: V1,
      cmd: ["sh", "-c", script, "sh", ...HOSTILE_STRINGS],
      env: { ...env, PORT: String(port) },
      init: true,
      stopTimeoutMs: 1000,
      health: { http: { port, path: "/env" } },
    });
    const r = await run(atom("x", { steps: [step] }), { host: host(), lock: false });
    expect(r.status, r.error?.message).toBe("committed");
    const get = async (path: string) =>
      (await (await fetch(`http://127.0.0.1:${port}${path}`)).text()).split("\0").slice(0, -1);
    expect(await get("/args")).toEqual(HOSTILE_STRINGS);
    const vars = new Map(
      (await get("/env")).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
    expect(HOSTILE_STRINGS.map((_, i) => vars.get(`V${i}`))).toEqual(HOSTILE_STRINGS);
    expect(existsSync("/tmp/atomkit-pwned")).toBe(false);
  });

  it("docker.stop refuses a container started with --rm (stopping it would delete it)", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    const c = await docker.createContainer({
      name,
      Image: V1,
      Cmd: httpd(port),
      HostConfig: { NetworkMode: "host", Init: true, AutoRemove: true },
    });
    await c.start();
    const r = await run(atom("x", { steps: [stopContainer({ docker: conn, name })] }), {
      host: host(),
      lock: false,
    });
    expect(r.steps[0]?.status).toBe("failed-unchanged");
    expect(r.error?.message).toContain("--rm");
    expect((await containers(name)).map((x) => x.running)).toEqual([true]);
  });

  it("what undo cannot restore: a removed container deleted by prune keep 0 makes the undo fail loudly", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    await startByHand(name, V1, port);
    const store = memoryTrail();
    const r = await run(
      atom("x", { steps: [removeContainer({ docker: conn, name, stopTimeoutMs: 1000 })] }),
      {
        host: host(),
        trail: store,
        lock: false,
      },
    );
    expect(r.status).toBe("committed");
    expect(await pruneContainers({ docker: conn, name, keep: 1 })).toEqual({
      removed: [],
      kept: [`${name}-removed-${r.runId}`],
    });
    expect((await pruneContainers({ docker: conn, name, keep: 0 })).removed).toEqual([
      `${name}-removed-${r.runId}`,
    ]);
    const u = await undoRun(store, r.runId, { host: host(), steps: [...steps], lock: false, backoffMs: 1 });
    expect(u.status).toBe("rollback-failed");
    expect(u.error?.message).toContain("is gone");
    expect(u.stillApplied).toEqual(["docker.remove"]);
  });

  it("an unreachable daemon: a clear error naming the socket, after waiting docker.waitMs", async () => {
    const socketPath = join(stateDir, "no-docker.sock");
    const r = await run(
      atom("x", { steps: [stopContainer({ docker: { socketPath, waitMs: 300 }, name: "anything" })] }),
      { host: host(), lock: false },
    );
    expect(r.steps[0]?.status).toBe("failed-unchanged");
    expect(r.error?.message).toContain(`unix://${socketPath}`);
    expect(r.error?.message).toContain("unreachable");
    expect(r.error?.message).toContain("start dockerd");
  });
});

// docker.swap's cleanup against the real dockerd: it removes the `<name>-next-<runId>` container a swap
// cut short left, only when this run's docker.swap made it for this name and it is not all that
// answers; the observed state does not change.

import { spawn } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileTrail, localHost, recover, type StepContext, validateParams } from "@atomkit/core";
import { stepContext } from "@atomkit/testkit";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { steps, swapContainer } from "../src/index";
import {
  answer,
  conn,
  containers,
  docker,
  filePrefix,
  freePort,
  httpd,
  noDocker,
  PATIENCE_MS,
  removeAll,
  startByHand,
  uniqueName,
  V1,
  V2,
  waitAnswer,
} from "./_fixtures";

const PREFIX = filePrefix("clean");
let stateDir = "";
const host = () => localHost({ stateDir });

async function bound(name: string, port: number, runId: string) {
  const step = swapContainer({ docker: conn, name, image: V2, cmd: httpd(port), order: "start-first" });
  const v = await validateParams(step);
  if (v.issues) throw new Error(JSON.stringify(v.issues));
  const params = v.value as never;
  const logs: string[] = [];
  const ctx: StepContext = stepContext({
    host: host(),
    log: (m) => logs.push(m),
    runId: runId,
    step: "docker.swap",
  });
  const d = step.definition;
  return {
    logs,
    observe: () => d.observe(ctx, params),
    same: d.same!,
    cleanup: () => d.cleanup!(ctx, params),
  };
}

/** A new container as an interrupted swap leaves it: its name, its labels, created or running. */
async function leftover(
  name: string,
  runId: string,
  o: { running: boolean; labels?: Record<string, string>; suffix?: string },
) {
  const c = await docker.createContainer({
    name: `${name}-next-${o.suffix ?? runId}`,
    Image: V2,
    Cmd: ["sleep", "120"],
    Labels: o.labels ?? {
      "org.atomkit.kind": "docker.swap",
      "org.atomkit.step": "docker.swap",
      "org.atomkit.run": runId,
      "org.atomkit.name": name,
    },
    HostConfig: { NetworkMode: "none", Init: true },
  });
  if (o.running) await c.start();
  return c.id;
}

const exists = async (id: string) =>
  docker
    .getContainer(id)
    .inspect()
    .then(
      () => true,
      () => false,
    );

describe.skipIf(noDocker)("docker.swap cleanup against a real dockerd", () => {
  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "atk-docker-clean-"));
  });
  afterAll(async () => {
    await removeAll(PREFIX);
    await rm(stateDir, { recursive: true, force: true, maxRetries: 10 });
  });

  it("removes this run's leftover (created, or running beside a running service); the state stays the same", async () => {
    for (const running of [false, true]) {
      const name = uniqueName(PREFIX);
      const port = await freePort();
      await startByHand(name, V1, port);
      const runId = `20261201T000000Z-c1ea${running ? "01" : "00"}`;
      const id = await leftover(name, runId, { running });
      const s = await bound(name, port, runId);
      const before = await s.observe();
      await s.cleanup();
      expect(await exists(id), `running: ${running}`).toBe(false);
      expect(s.same(await s.observe(), before)).toBe(true);
      expect(await answer(port)).toBe("atomkit-test busybox v1");
      expect(s.logs.join("\n")).toContain("left by a swap cut short");
      await s.cleanup(); // nothing left: a no-op
    }
  });

  it("leaves a running leftover while the container holding the name is stopped (it may be all that answers)", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    await startByHand(name, V1, port);
    await docker.getContainer(name).stop({ t: 1 });
    const runId = "20261201T000000Z-c1ea02";
    const id = await leftover(name, runId, { running: true });
    const s = await bound(name, port, runId);
    await s.cleanup();
    expect(await exists(id)).toBe(true);
    expect(s.logs.join("\n")).toContain("nothing else serves");
  });

  it("never touches a container this run's docker.swap did not make for this name", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    await startByHand(name, V1, port);
    const runId = "20261201T000000Z-c1ea03";
    const mine = (labels: Record<string, string>) => ({
      "org.atomkit.kind": "docker.swap",
      "org.atomkit.run": runId,
      "org.atomkit.name": name,
      ...labels,
    });
    const other = await leftover(name, "20261201T000000Z-0the12", { running: false });
    for (const labels of [
      { "org.atomkit.test": "made by hand under that name" },
      mine({ "org.atomkit.run": "another run" }),
      mine({ "org.atomkit.name": "another-service" }),
      mine({ "org.atomkit.kind": "docker.run" }),
    ]) {
      const id = await leftover(name, runId, { running: false, labels });
      const s = await bound(name, port, runId);
      await s.cleanup();
      expect(await exists(id), JSON.stringify(labels)).toBe(true);
      expect(s.logs.join("\n")).toContain("was not made by this run");
      await docker.getContainer(id).remove({ force: true });
    }
    expect(await exists(other)).toBe(true); // another run's leftover is that run's to clean
  });

  it("start-first swap killed (-9) while the new one was checked: recover finds nothing changed, cleanup removes the leftover", async () => {
    const name = uniqueName(PREFIX);
    const [port, newPort] = [await freePort(), await freePort()];
    await startByHand(name, V1, port);
    const trailDir = await mkdtemp(join(tmpdir(), "atk-trail-"));
    const child = spawn(process.execPath, [join(import.meta.dirname, "crash-child.mjs")], {
      env: {
        ...process.env,
        TRAIL: trailDir,
        NAME: name,
        PORT: String(port),
        HEALTH_PORT: String(newPort),
        ORDER: "start-first",
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
    const deadline = Date.now() + PATIENCE_MS;
    while (!out.includes("waiting for it to be healthy")) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`child did not reach the swap: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const [file] = await readdir(trailDir);
    const runId = file!.replace(/\.[a-z]+$/, "");
    const left = (await containers(name)).filter((x) => x.name.startsWith(`${name}-next-`));
    expect(left.map((x) => x.running)).toEqual([true]);

    const [rec] = await recover(fileTrail({ dir: trailDir }), {
      host: host(),
      steps: [...steps],
      lock: false,
    });
    expect(rec?.found).toBe("died-while-applying");
    expect(rec?.steps[0]?.status).toBe("failed-unchanged"); // v1 served throughout
    expect(rec?.runId).toBe(runId);
    const s = await bound(name, port, rec!.runId);
    await s.cleanup();
    expect((await containers(name)).map((x) => [x.name, x.running])).toEqual([[name, true]]);
    expect(await waitAnswer(port)).toBe("atomkit-test busybox v1");
    await rm(trailDir, { recursive: true, force: true, maxRetries: 10 });
  });
});

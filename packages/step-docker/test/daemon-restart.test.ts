// dockerd restarted in the middle of a swap. Restarting the shared testbed daemon would break other
// suites, so this file starts a private dockerd on its own socket and data root (the testbed script
// supports it) and restarts that one.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { atom, localHost, run } from "@atomkit/core";
import { serviceMissing } from "@atomkit/testkit";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { swapContainer } from "../src/index";
import {
  answer,
  containers,
  freePort,
  noDocker,
  PATIENCE_MS,
  removeAll,
  startByHand,
  V1,
  V2,
  waitAnswer,
} from "./_fixtures";

const run$ = promisify(execFile);
const SCRIPT = resolve(import.meta.dirname, "../../../scripts/testbed/dockerd.sh");
const canStart = !noDocker && existsSync(SCRIPT) && process.getuid?.() === 0;
const noPrivate = serviceMissing(
  "a private dockerd",
  canStart,
  `needs root, dockerd and ${SCRIPT} (it starts dockerd with DOCKER_HOST=unix:///<dir>/docker.sock)`,
);

let base = "";
let socketPath = "";
let d: Docker;
const NAME = `atk-restart-${process.pid}`;

function daemon(action: "start" | "stop") {
  return run$("bash", [SCRIPT, action], {
    env: { ...process.env, DOCKER_HOST: `unix://${socketPath}`, ATOMKIT_TESTBED_DIR: base },
    // the script's own waits bound it (dockerd must answer within minutes)
    timeout: 10 * PATIENCE_MS,
  });
}

describe.skipIf(noPrivate)("dockerd restarted mid-swap (private daemon)", () => {
  beforeAll(async () => {
    // short: unix socket paths are limited to ~107 bytes
    base = await mkdtemp(join(tmpdir(), "atk-dd-"));
    socketPath = join(base, "docker.sock");
    await daemon("start"); // also imports the two test images into its own data root
    d = new Docker({ socketPath });
  });

  afterAll(async () => {
    if (!base) return;
    // best effort and bounded: a daemon that stopped answering must not hang the cleanup (seen once
    // under load); stopping it removes its containers' mounts anyway (the script unmounts leftovers)
    if (d) {
      const removed = removeAll(NAME, d).catch(() => {});
      await Promise.race([removed, new Promise((r) => setTimeout(r, 60_000).unref())]);
    }
    await daemon("stop").catch(() => {});
    await rm(base, { recursive: true, force: true, maxRetries: 10 }).catch(() => {});
  });

  it("the run rolls back once the daemon is back: v1 running and answering, nothing left over", async () => {
    const port = await freePort();
    const v1Id = await startByHand(NAME, V1, port, d);
    const flags = join(base, "flags");
    await mkdir(flags);
    let restart: Promise<unknown> | undefined;
    const step = swapContainer({
      docker: { socketPath, waitMs: PATIENCE_MS },
      name: NAME,
      image: V2,
      // listens only once the daemon was restarted (the flag): the restart lands while the swap waits
      // for health, however long it takes; had the container survived the restart, it would then
      // become healthy and the run commit
      cmd: [
        "sh",
        "-c",
        'while [ ! -e /flags/restarted ]; do sleep 0.1; done; exec httpd -f -p "127.0.0.1:$1" -h /www',
        "sh",
        String(port),
      ],
      mounts: [{ source: flags, target: "/flags", readOnly: true }],
      init: true,
      stopTimeoutMs: 1000,
      health: { http: { port }, timeoutMs: PATIENCE_MS },
    });
    const events: string[] = [];
    const r = await run(atom("release", { steps: [step] }), {
      host: localHost({ stateDir: join(base, "state") }),
      lock: false,
      backoffMs: 100,
      onEvent: (e) => {
        const text = e.type === "step:log" ? `log ${(e as { message?: string }).message}` : e.type;
        events.push(text);
        if (!restart && text.includes("waiting for it to be healthy")) {
          restart = daemon("stop")
            .then(() => daemon("start"))
            .then(() => writeFile(join(flags, "restarted"), ""));
        }
      },
    });
    await restart;
    expect(restart, "the restart was triggered").toBeDefined();
    // the daemon stopped every container; the new one never got healthy, so the swap was undone
    expect(r.status, `${r.error?.message}\n${events.join("\n")}`).toBe("rolled-back");
    expect(r.steps[0]).toMatchObject({ status: "undone", verified: true });
    expect(await waitAnswer(port)).toBe("atomkit-test busybox v1");
    const left = await containers(NAME, d);
    expect(left.map((x) => [x.name, x.id, x.running])).toEqual([[NAME, v1Id, true]]);
    const labelled = await d.listContainers({ all: true, filters: { label: [`org.atomkit.name=${NAME}`] } });
    expect(labelled).toEqual([]);
    expect(await answer(port)).toBe("atomkit-test busybox v1");
  });
});

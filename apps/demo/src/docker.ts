import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRenderer, pickMode } from "@atomkit/cli";
import { atom, fileTrail, localHost, run } from "@atomkit/core";
import { swapContainer } from "@atomkit/step-docker";
import { createColors } from "picocolors";
import { probe } from "./http";

const IMAGES = { v1: "atomkit-test/busybox:1", v2: "atomkit-test/busybox:2" };

/**
 * The container form of the release (`--docker`): `docker.swap` of a busybox httpd on the host
 * network, v1 → v2 → a broken v3 (the v2 image without its server) rolled back to v2, verified.
 * Needs a running dockerd with the test images (`bash scripts/testbed/dockerd.sh start`, as root).
 */
export async function runDockerDemo(): Promise<number> {
  const mode = pickMode(process.stdout, false, process.env);
  const c = createColors(mode.color);
  const host = localHost();
  const images = await host
    .exec(["docker", "image", "inspect", IMAGES.v1, IMAGES.v2], { reject: false })
    .catch(() => null);
  if (images?.code !== 0) {
    console.error(
      `--docker needs a running dockerd with the images ${IMAGES.v1} and ${IMAGES.v2}: run \`bash scripts/testbed/dockerd.sh start\` as root first`,
    );
    return 2;
  }
  const port = 19_000 + Math.floor(Math.random() * 1_000);
  const name = `atomkit-demo-web-${port}`;
  const work = await mkdtemp(join(tmpdir(), "atomkit-demo-docker-"));
  const trail = fileTrail({ dir: join(work, "trails") });
  const swap = (image: string, serve: boolean) =>
    atom("release", {
      steps: [
        swapContainer(
          {
            name,
            image,
            cmd: serve ? ["httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", "/www"] : ["sleep", "3600"],
            network: "host",
            stopTimeoutMs: 1_000,
            // a server that starts gets time on a busy machine; the broken one is known not to
            health: { http: { port, path: "/index.html" }, timeoutMs: serve ? 60_000 : 2_000 },
          },
          { name: "swap" },
        ),
      ],
    });
  const plan = [
    { label: "① v1", atom: swap(IMAGES.v1, true), expect: "committed" },
    { label: "② v2", atom: swap(IMAGES.v2, true), expect: "committed" },
    { label: "③ broken v3 (the server never starts)", atom: swap(IMAGES.v2, false), expect: "rolled-back" },
  ];
  let code = 0;
  try {
    console.log(c.bold(`atomkit demo --docker — docker.swap of "${name}" on the host network, port ${port}`));
    for (const step of plan) {
      console.log(`\n${c.bold(step.label)}`);
      const renderer = createRenderer(mode);
      const result = await run(step.atom, { host, trail, lock: false, onEvent: (e) => renderer.event(e) });
      renderer.done();
      const ok = result.status === step.expect;
      if (!ok) code = 1;
      console.log(
        `  ${ok ? c.green("✓") : c.red("✗")} ${result.status} — GET /index.html answers ${c.bold(JSON.stringify(await probe(host, port, "/index.html")))}`,
      );
      if (!ok && result.error) console.log(c.red(result.error.message));
    }
  } finally {
    // the demo's containers, current and kept-for-undo ones alike
    const ids = (
      await host.exec(["docker", "ps", "-aq", "--filter", `label=org.atomkit.name=${name}`], {
        reject: false,
      })
    ).stdout
      .split("\n")
      .filter(Boolean);
    if (ids.length) await host.exec(["docker", "rm", "-f", ...ids], { reject: false });
    await rm(work, { recursive: true, force: true });
  }
  return code;
}

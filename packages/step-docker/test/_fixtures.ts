// Shared by the docker tests: the real dockerd of the testbed, free ports, containers made by hand
// (as a service that existed before Atomkit), and cleanup of everything a test file created.
import { randomBytes } from "node:crypto";
import { PATIENCE_MS, serviceMissing, testbedEnv } from "@atomkit/testkit";
import Docker from "dockerode";

const env = testbedEnv("dockerd.env");
export const SOCKET = env.ATOMKIT_DOCKER_SOCKET ?? "/var/run/docker.sock";
export const V1 = env.ATOMKIT_DOCKER_IMAGE_V1 ?? "atomkit-test/busybox:1";
export const V2 = env.ATOMKIT_DOCKER_IMAGE_V2 ?? "atomkit-test/busybox:2";
export const docker = new Docker({ socketPath: SOCKET });
export const conn = { socketPath: SOCKET };
/** Containers made by hand in tests carry this label (the steps' own carry org.atomkit.*). */
export const TEST_LABEL = "org.atomkit.test";

async function dockerReady(): Promise<boolean> {
  try {
    await docker.ping();
    await docker.getImage(V1).inspect();
    await docker.getImage(V2).inspect();
    return true;
  } catch {
    return false;
  }
}

/** True when the suite must skip (off CI, no dockerd); under CI=true a missing dockerd throws. */
export const noDocker = serviceMissing(
  "dockerd",
  await dockerReady(),
  `no Docker daemon with ${V1} and ${V2} at ${SOCKET}; start it with: bash scripts/testbed/dockerd.sh start`,
);

/** A name prefix unique to one test file, so its afterAll removes exactly what it made. */
export function filePrefix(tag: string): string {
  return `atk-${tag}-${randomBytes(3).toString("hex")}`;
}

let seq = 0;
export function uniqueName(prefix: string): string {
  return `${prefix}-${++seq}`;
}

// ports from this package's own range: suites of other packages run at the same time
export { freePort, growingBudget, PATIENCE_MS } from "@atomkit/testkit";

/** A health check that should pass gets all the time a loaded box may need (it costs nothing when healthy). */
export const HEALTHY_MS = PATIENCE_MS;

export const httpd = (port: number) => ["httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", "/www"];

/** A container started by hand, as a service running before Atomkit's first deploy. */
export async function startByHand(
  name: string,
  image: string,
  port: number,
  d: Docker = docker,
): Promise<string> {
  const c = await d.createContainer({
    name,
    Image: image,
    Cmd: httpd(port),
    Labels: { [TEST_LABEL]: "step-docker" },
    HostConfig: { NetworkMode: "host", Init: true },
  });
  await c.start();
  await waitAnswer(port);
  return c.id;
}

/**
 * The body served on 127.0.0.1:port, or null when nothing answers: refused at once when nothing
 * listens; `ms` only cuts a server that accepted and then hangs.
 */
export async function answer(port: number, ms = 30_000): Promise<string | null> {
  const r = await reach(port, ms);
  return typeof r === "string" ? r : null;
}

/**
 * What 127.0.0.1:port does now: the body it serves, `refused` (nothing listens: a fact, at once), or
 * `slow` (no answer within `ms`: says nothing on a loaded box).
 */
export async function reach(port: number, ms = 30_000): Promise<string | { refused: true } | { slow: true }> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(ms) });
    return (await r.text()).trim();
  } catch (error) {
    const code = (error as { cause?: { code?: string } }).cause?.code;
    return code === "ECONNREFUSED" ? { refused: true } : { slow: true };
  }
}

export async function waitAnswer(port: number, ms = PATIENCE_MS): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const a = await answer(port, 500);
    if (a !== null) return a;
    if (Date.now() > end) throw new Error(`nothing answers on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The container named `prefix` and every one named `prefix-…`: name, id, image, running; sorted by name. */
export async function containers(prefix: string, d: Docker = docker) {
  const list = await d.listContainers({ all: true });
  return list
    .map((x) => ({
      name: (x.Names[0] ?? "").slice(1),
      id: x.Id,
      image: x.Image,
      running: x.State === "running",
    }))
    .filter((x) => x.name === prefix || x.name.startsWith(`${prefix}-`))
    .sort((a, b) => a.name.localeCompare(b.name));
}

export async function removeAll(prefix: string, d: Docker = docker): Promise<void> {
  for (const x of await containers(prefix, d)) {
    await d
      .getContainer(x.id)
      .remove({ force: true, v: true })
      .catch(() => {});
  }
}

/** A picture of a service: its containers and what its port answers. */
export async function picture(prefix: string, port: number) {
  return { containers: await containers(prefix), answer: await answer(port) };
}

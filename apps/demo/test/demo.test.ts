import { serviceMissing, testbedEnv } from "@atomkit/testkit";
import { describe, expect, it } from "vitest";
import { demo } from "./_demo";

describe("the demo, as `npm run demo` runs it", () => {
  it("deploys v1, v2, then rolls a broken v3 back to v2, verified, answering HTTP", async () => {
    const r = await demo([]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/① deploy v1[\s\S]*✓ local: committed — GET \/ now answers "200 hello from v1"/);
    expect(r.stdout).toMatch(/② deploy v2[\s\S]*✓ local: committed — GET \/ now answers "200 hello from v2"/);
    expect(r.stdout).toMatch(/✗ start failed-changed: the process did not become healthy/);
    expect(r.stdout).toMatch(/↺ stop undone, verified/);
    expect(r.stdout).toMatch(
      /③ deploy v3[\s\S]*✓ local: rolled-back \(every undo verified\) — GET \/ now answers "200 hello from v2"/,
    );
    expect(r.stdout).toContain(
      "demo finished: v1 → v2 → broken v3 rolled back to v2 → rollback to v1, verified",
    );
    expect(r.stdout).toMatch(
      /④ rollback[\s\S]*✓ local: rolled-back \(every undo verified\) — GET \/ now answers "200 hello from v1"/,
    );
  });

  it.each(["unpack", "link"])("--fail-at %s rolls the v2 deploy back to v1", async (step) => {
    const r = await demo(["--fail-at", step]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`✗ ${step} failed-changed: .*injected failure`));
    expect(r.stdout).toMatch(
      /② deploy v2[\s\S]*✓ local: rolled-back \(every undo verified\) — GET \/ now answers "200 hello from v1"/,
    );
    expect(r.stdout).toContain(
      `demo finished: v1 → v2 (failing at ${step}) rolled back to v1 → broken v3 rolled back to v1, verified`,
    );
  });

  it("refuses unknown flags with its usage (exit 2)", async () => {
    const r = await demo(["--bogus"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/Unknown option '--bogus'[\s\S]*--hosts/);
  });

  it("refuses an unknown --fail-at step", async () => {
    const r = await demo(["--fail-at", "nope"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--fail-at must be one of drain, upload/);
  });
});

const docker = testbedEnv("dockerd.env");
const noDocker = serviceMissing(
  "dockerd with the test images",
  !!docker.ATOMKIT_DOCKER_IMAGE_V1,
  "run: bash scripts/testbed/dockerd.sh start",
);

describe.skipIf(noDocker)("the demo's container form (--docker), against a real dockerd", () => {
  it("swaps v1 → v2, then rolls a broken v3 back to v2, verified", async () => {
    const r = await demo(["--docker"]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /① v1[\s\S]*✓ committed — GET \/index.html answers "200 atomkit-test busybox v1"/,
    );
    expect(r.stdout).toMatch(
      /② v2[\s\S]*✓ committed — GET \/index.html answers "200 atomkit-test busybox v2"/,
    );
    expect(r.stdout).toMatch(/↺ swap undone, verified/);
    expect(r.stdout).toMatch(
      /③ broken v3[\s\S]*✓ rolled-back — GET \/index.html answers "200 atomkit-test busybox v2"/,
    );
  });
});

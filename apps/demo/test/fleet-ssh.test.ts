import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileTrail, type Host, runFleet } from "@atomkit/core";
import { sshHost } from "@atomkit/step-ssh";
import { freePort, serviceMissing, testbedEnv } from "@atomkit/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildRelease } from "../src/app";
import { probe, stopApp } from "../src/http";
import { releaseAtom, setupAtom } from "../src/release";

// The release of DESIGN.md as a fleet over several REAL sshd instances on 127.0.0.1 (one per port,
// started by scripts/testbed/sshd.sh): one host failing mid-fleet rolls every host back.
const env = testbedEnv("sshd.env");
const ports = (env.ATOMKIT_SSH_PORTS ?? "").split(" ").filter(Boolean).map(Number);
const skip = serviceMissing(
  "sshd (several ports)",
  ports.length >= 3 && !!env.ATOMKIT_SSH_KEY,
  "run: bash scripts/testbed/sshd.sh start 2222 2223 2224 2225",
);

describe.skipIf(skip)("fleet release over real sshd", () => {
  let work: string;
  let hosts: Host[];
  const tarballs: Record<string, string> = {};
  const appPorts: number[] = [];
  const baseOf = (h: Host) => `${work}/host-${hosts.indexOf(h)}`;
  const portOf = (h: Host) => appPorts[hosts.indexOf(h)]!;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "atomkit-fleet-ssh-"));
    hosts = ports.map((port, i) =>
      sshHost({
        host: env.ATOMKIT_SSH_HOST ?? "127.0.0.1",
        port,
        username: env.ATOMKIT_SSH_USER ?? "root",
        privateKey: readFileSync(env.ATOMKIT_SSH_KEY!),
        knownHosts: env.ATOMKIT_SSH_KNOWN_HOSTS!,
        stateDir: `${work}/state-${i}`,
      }),
    );
    for (const v of ["v1", "v2"]) tarballs[v] = await buildRelease(join(work, "dist"), v);
    for (const _ of hosts) appPorts.push(await freePort());
  });
  afterAll(async () => {
    for (const h of hosts ?? []) await stopApp(h, `${baseOf(h)}/app.pid`).catch(() => {});
    await Promise.all((hosts ?? []).map((h) => h.close()));
    await rm(work, { recursive: true, force: true, maxRetries: 10 });
  });

  it("v1 commits on every host; v2 failing health on one host mid-fleet rolls back every host (rollback-all), verified", async () => {
    const trail = fileTrail({ dir: join(work, "trails") });
    expect((await runFleet((h) => setupAtom(baseOf(h)), hosts, { trail })).status).toBe("committed");
    const v1 = await runFleet(
      (h) => releaseAtom({ base: baseOf(h), version: "v1", tarball: tarballs.v1!, port: portOf(h) }),
      hosts,
      { trail },
    );
    expect(v1.status, JSON.stringify(v1.hosts.map((h) => h.result?.error?.message ?? h.error?.message))).toBe(
      "committed",
    );
    for (const h of hosts) expect(await probe(h, portOf(h))).toBe("200 hello from v1");

    // the third host's start fails (injected after the new process is up); batches [2, 1, 1]: hosts
    // 0 and 1 commit v2 first, then host 2 fails; host 3 never runs
    const failing = hosts[2]!;
    const v2 = await runFleet(
      (h) =>
        releaseAtom({
          base: baseOf(h),
          version: "v2",
          tarball: tarballs.v2!,
          port: portOf(h),
          ...(h === failing ? { failAt: "start" } : {}),
        }),
      hosts,
      { trail, batch: [2, 1], onFailure: "rollback-all", backoffMs: 50 },
    );
    const why = JSON.stringify(
      v2.hosts.map((h) => [h.state, h.error?.message, h.undo?.error?.message]),
      null,
      1,
    );
    expect(v2.status, why).toBe("rolled-back");
    expect(v2.hosts.map((h) => h.state)).toEqual(
      ["rolled-back", "rolled-back", "rolled-back", "not-run"].slice(0, hosts.length),
    );
    expect(v2.hosts[0]?.undo?.steps.every((s) => s.status === "undone" && s.verified)).toBe(true);
    expect(v2.hosts[2]?.result?.steps.filter((s) => s.status === "undone").every((s) => s.verified)).toBe(
      true,
    );
    for (const h of hosts) expect(await probe(h, portOf(h))).toBe("200 hello from v1");
  });
});

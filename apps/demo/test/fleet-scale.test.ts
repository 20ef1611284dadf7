import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileTrail, type Host, type RunEvent, runFleet } from "@atomkit/core";
import { type SshHost, sshHost } from "@atomkit/step-ssh";
import { freePort, serviceMissing, testbedEnv } from "@atomkit/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildRelease } from "../src/app";
import { probe, stopApp } from "../src/http";
import { releaseAtom, setupAtom } from "../src/release";

// The fleet benchmark's code path (bench/fleet.bench.mjs), small: 8 hosts over the testbed's real
// sshd (two hosts per server, each with its own directory), the full release atom, the file trail.
// What it holds at any size: the fleet keeps connections only for the hosts in flight, closes each
// when its run ends, reconnects for rollback-all, and leaves no socket behind.
const env = testbedEnv("sshd.env");
const ports = (env.ATOMKIT_SSH_PORTS ?? "").split(" ").filter(Boolean).map(Number);
const skip = serviceMissing(
  "sshd (several ports)",
  ports.length >= 2 && !!env.ATOMKIT_SSH_KEY,
  "run: bash scripts/testbed/sshd.sh start 2222 2223 2224 2225",
);
const HOSTS = 8;
const CONCURRENCY = 3;

/** Sockets this process holds (its SSH connections among them). */
const sockets = () =>
  readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith("socket:");
    } catch {
      return false; // closed meanwhile
    }
  }).length;

describe.skipIf(skip)("a fleet of 8 over real sshd, as the 200-host benchmark runs it", () => {
  let work: string;
  let hosts: SshHost[];
  const appPorts: number[] = [];
  const tarballs: Record<string, string> = {};
  const baseOf = (h: Host) => `${work}/host-${hosts.indexOf(h as SshHost)}`;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "atomkit-fleet-scale-"));
    const key = readFileSync(env.ATOMKIT_SSH_KEY!);
    hosts = Array.from({ length: HOSTS }, (_, i) =>
      sshHost({
        host: env.ATOMKIT_SSH_HOST ?? "127.0.0.1",
        port: ports[i % ports.length]!,
        username: env.ATOMKIT_SSH_USER ?? "root",
        privateKey: key,
        knownHosts: env.ATOMKIT_SSH_KNOWN_HOSTS!,
        stateDir: `${work}/state-${i}`,
        name: `h${i}`,
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

  it("holds at most `concurrency` connections, closes each as its host ends, reconnects for rollback-all", async () => {
    const trail = fileTrail({ dir: join(work, "trails") });
    // at each host run (or undo) starting: how many hosts hold a connection
    let mostConnected = 0;
    const onEvent = (e: RunEvent) => {
      if (e.type === "run:start")
        mostConnected = Math.max(mostConnected, hosts.filter((h) => h.connected).length);
    };
    const release = (version: string, failing?: Host) => (h: Host) =>
      releaseAtom({
        base: baseOf(h),
        version,
        tarball: tarballs[version]!,
        port: appPorts[hosts.indexOf(h as SshHost)]!,
        ...(h === failing ? { failAt: "start" } : {}),
      });
    const before = sockets();

    const setup = await runFleet((h) => setupAtom(baseOf(h)), hosts, { trail, concurrency: CONCURRENCY });
    expect(setup.status).toBe("committed");
    const v1 = await runFleet(release("v1"), hosts, { trail, concurrency: CONCURRENCY, onEvent });
    expect(v1.status, JSON.stringify(v1.hosts.map((h) => h.result?.error?.message ?? h.error?.message))).toBe(
      "committed",
    );
    for (const h of hosts) expect(readlinkSync(`${baseOf(h)}/current`)).toBe(`${baseOf(h)}/releases/v1`);
    expect(hosts.some((h) => h.connected)).toBe(false);
    expect(sockets()).toBeLessThanOrEqual(before);

    // v2: the last host fails after the seven others committed; every one is undone over a new link
    const last = hosts.at(-1)!;
    const v2 = await runFleet(release("v2", last), hosts, {
      trail,
      concurrency: CONCURRENCY,
      batch: [HOSTS - 1, 1],
      backoffMs: 50,
      onEvent,
    });
    const why = JSON.stringify(v2.hosts.map((h) => [h.state, h.error?.message, h.undo?.error?.message]));
    expect(v2.status, why).toBe("rolled-back");
    expect(v2.hosts.filter((h) => h.undo).length).toBe(HOSTS - 1);
    for (const h of v2.hosts.filter((x) => x.undo))
      expect(h.undo?.steps.every((s) => s.status === "undone" && s.verified)).toBe(true);
    for (const h of hosts) expect(readlinkSync(`${baseOf(h)}/current`)).toBe(`${baseOf(h)}/releases/v1`);
    expect(await probe(hosts[0]!, appPorts[0]!)).toBe("200 hello from v1");
    await hosts[0]!.close();

    expect(mostConnected).toBeLessThanOrEqual(CONCURRENCY);
    expect(hosts.some((h) => h.connected)).toBe(false);
    expect(sockets()).toBeLessThanOrEqual(before);
  });
});

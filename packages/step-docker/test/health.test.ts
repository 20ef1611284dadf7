// Health checks of step-docker: the kit's shared http/tcp probes (one `expect` shape with
// step-process) plus step-docker's own kinds, against containers of the real dockerd.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atom, localHost, run, validateParams } from "@atomkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runContainer } from "../src/index";
import {
  conn,
  filePrefix,
  freePort,
  HEALTHY_MS,
  httpd,
  noDocker,
  removeAll,
  uniqueName,
  V1,
} from "./_fixtures";

const PREFIX = filePrefix("health");
let stateDir = "";
const host = () => localHost({ stateDir });

const issuesOf = async (health: unknown) =>
  (
    (await validateParams(runContainer({ docker: conn, name: "web", image: V1, health } as never))).issues ??
    []
  ).map((i) => [i.path, i.message]);

describe("step-docker health: params", () => {
  it("one expect shape with step-process; the older forms still read", async () => {
    const checked = async (health: unknown) => {
      const r = await validateParams(runContainer({ docker: conn, name: "web", image: V1, health } as never));
      expect(r.issues).toBeUndefined();
      return (r as { value: { health: unknown } }).value.health;
    };
    expect(await checked({ http: { port: 80, expect: { status: 200, body: "v2" } } })).toEqual({
      http: { port: 80, path: "/", hostname: "127.0.0.1", expect: { status: 200, body: "v2" } },
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    expect(await checked({ http: { port: 80, expect: 204 } })).toMatchObject({
      http: { expect: { status: 204 } },
    });
    expect(await checked({ http: { port: 80, expect: { status: ["2xx", "3xx"] } } })).toMatchObject({
      http: { expect: { status: ["2xx", "3xx"] } },
    });
    expect(await checked({ docker: true })).toEqual({ docker: true, timeoutMs: 30_000, intervalMs: 250 });
  });

  it("names the field and what was expected", async () => {
    expect(await issuesOf({ http: { port: 80, expect: { status: 99 } } })).toEqual([
      ["health.http.expect.status", 'expected an HTTP status (200) or class ("2xx"), found 99'],
    ]);
    expect(await issuesOf({ docker: false })).toEqual([["health.docker", "expected true, found false"]]);
    expect(await issuesOf({ exec: ["true"], tcp: { port: 1 } })).toEqual([
      ["health", "expected exactly one of http, tcp, exec, docker, found tcp and exec"],
    ]);
  });
});

describe.skipIf(noDocker)("step-docker health against a real dockerd", () => {
  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "atomkit-docker-health-"));
  });
  afterAll(async () => {
    await removeAll(PREFIX);
    await rm(stateDir, { recursive: true, force: true });
  });

  const start = (name: string, port: number, health: unknown) =>
    run(
      atom("health", {
        steps: [
          runContainer({
            docker: conn,
            name,
            image: V1,
            cmd: httpd(port),
            network: "host",
            init: true,
            stopTimeoutMs: 1000,
            health,
          } as never),
        ],
      }),
      { host: host(), lock: false },
    );

  it("healthy is any 2xx by default: a 404 fails, naming what was expected and what was found", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    // fails whatever the timing: the path is missing, so httpd answers 404 every time
    const r = await start(name, port, { http: { port, path: "/missing" }, timeoutMs: 1_500 });
    expect(r.status).toBe("rolled-back");
    expect(r.error?.message).toContain("was not healthy within 1500 ms");
    expect(r.error).toMatchObject({
      expected: `HTTP 2xx from GET http://127.0.0.1:${port}/missing`,
      found: "HTTP 404",
    });
  });

  it("expect.status takes a code or a class: the same 404 is healthy when asked for", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    const r = await start(name, port, {
      http: { port, path: "/missing", expect: { status: [404, "2xx"] } },
      timeoutMs: HEALTHY_MS,
    });
    expect(r.status, r.error?.message).toBe("committed");
  });

  it("exec in the container: its exit code is what was found", async () => {
    const name = uniqueName(PREFIX);
    const port = await freePort();
    const r = await start(name, port, { exec: ["sh", "-c", "exit 3"], timeoutMs: 1_500 });
    expect(r.status).toBe("rolled-back");
    expect(r.error).toMatchObject({
      expected: 'exit code 0 from ["sh","-c","exit 3"] in the container',
      found: "exit code 3",
    });
  });
});

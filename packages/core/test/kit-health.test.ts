import { once } from "node:events";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { localHost } from "../src/index";
import {
  HEALTH_DEFAULTS,
  healthChecks,
  httpCheck,
  ParamsFieldError,
  pollHealth,
  probeHttp,
  probeTcp,
  statusMatches,
  tcpCheck,
} from "../src/kit";

// The kit's probes against real servers on this machine, through localHost's `connect` (step-ssh's
// suite runs the same probes over sshHost). Servers bind port 0: the kernel hands each its own port.

const host = localHost({ name: "local" });
const servers: Server[] = [];
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as { port: number }).port;
}

const http = (handler: (req: IncomingMessage, res: ServerResponse) => void) =>
  listen(createHttpServer(handler));

/** A port nobody listens on: one the kernel just handed out and took back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

const check = (value: unknown) => httpCheck(value, "health.http");

describe("kit health: validation", () => {
  it("fills the defaults: path /, 127.0.0.1, any 2xx; one timing for every check", () => {
    expect(check({ port: 8080 })).toEqual({
      port: 8080,
      path: "/",
      hostname: "127.0.0.1",
      expect: { status: "2xx" },
    });
    expect(healthChecks().parse({ tcp: { port: 5432 } }, "health")).toEqual({
      tcp: { port: 5432, hostname: "127.0.0.1" },
      timeoutMs: HEALTH_DEFAULTS.timeoutMs,
      intervalMs: HEALTH_DEFAULTS.intervalMs,
    });
    expect(HEALTH_DEFAULTS).toEqual({ timeoutMs: 30_000, intervalMs: 250 });
  });

  it("reads the older forms: expect as a number, body beside expect", () => {
    expect(check({ port: 1, expect: 204, body: "ok" }).expect).toEqual({ status: 204, body: "ok" });
    expect(check({ port: 1, expect: { status: [200, "3xx"], body: "v2" } }).expect).toEqual({
      status: [200, "3xx"],
      body: "v2",
    });
    // the validated form validates again to itself (a trail's params are checked again on recover)
    const once = check({ port: 1, path: "/h", expect: 200, body: "x" });
    expect(check(once)).toEqual(once);
  });

  it("names every wrong field, and what was expected", () => {
    const error = (() => {
      try {
        check({ port: 0, path: "/a b", expect: { status: "2XX" }, hostnme: "x" });
      } catch (e) {
        return e as ParamsFieldError;
      }
    })();
    expect(error).toBeInstanceOf(ParamsFieldError);
    expect(error!.issues.map((i) => i.path)).toEqual([
      "health.http.port",
      "health.http.path",
      "health.http.expect.status",
      "health.http.hostnme",
    ]);
    expect(error!.issues[0]!.message).toBe("expected a TCP port from 1 to 65535, found 0");
    expect(error!.issues[2]!.message).toBe('expected an HTTP status (200) or class ("2xx"), found "2XX"');
    expect(error!.issues[3]!.message).toMatch(/did you mean "hostname"/);
    expect(() => check({ port: 1, expect: { body: "a" }, body: "b" })).toThrow(/once, in expect.body/);
    expect(() => tcpCheck({ port: 70_000 }, "t")).toThrow(/TCP port from 1 to 65535, found 70000/);
  });

  it("exactly one kind, the provider's kinds included", () => {
    const checks = healthChecks({
      exec: {
        check: (v: unknown) => v as string[],
        describe: (argv: string[]) => `${argv.join(" ")} exits 0`,
      },
    });
    expect(checks.kinds).toEqual(["http", "tcp", "exec"]);
    expect(() => checks.parse({}, "health")).toThrow("expected exactly one of http, tcp, exec, found none");
    expect(() => checks.parse({ http: { port: 1 }, exec: ["true"] }, "health")).toThrow(
      "expected exactly one of http, tcp, exec, found http and exec",
    );
    const h = checks.parse({ exec: ["true"], intervalMs: 10 }, "health")!;
    expect(h).toEqual({ exec: ["true"], timeoutMs: 30_000, intervalMs: 10 });
    expect(checks.describe(h)).toBe("true exits 0");
    expect(checks.parse(undefined, "health")).toBeUndefined();
  });

  it("status: a code, a class, a list", () => {
    expect(statusMatches(204, "2xx")).toBe(true);
    expect(statusMatches(301, "2xx")).toBe(false);
    expect(statusMatches(301, [200, "3xx"])).toBe(true);
    expect(statusMatches(201, 200)).toBe(false);
  });
});

describe("kit health: probes against real servers (localHost)", () => {
  const o = { host, timeoutMs: 10_000 };

  it("http: 2xx by default; the status and body found are named", async () => {
    const port = await http((req, res) => {
      if (req.url === "/down") res.writeHead(503).end("draining");
      else res.writeHead(200).end("release v1");
    });
    expect(await probeHttp(check({ port }), o)).toEqual({ ok: true, found: "HTTP 200" });
    expect(await probeHttp(check({ port, path: "/down" }), o)).toEqual({ ok: false, found: "HTTP 503" });
    expect(await probeHttp(check({ port, path: "/down", expect: 503 }), o)).toMatchObject({ ok: true });
    expect(await probeHttp(check({ port, expect: { body: "v2" } }), o)).toEqual({
      ok: false,
      found: 'HTTP 200 without "v2" in the body: "release v1"',
    });
    expect(await probeHttp(check({ port, expect: { body: "v1" } }), o)).toMatchObject({ ok: true });
  });

  it("http: a server that keeps the connection open is judged once its answer is complete", async () => {
    const port = await listen(
      createServer((s) => s.once("data", () => s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))),
    );
    const started = Date.now();
    expect(await probeHttp(check({ port }), { host, timeoutMs: 120_000 })).toEqual({
      ok: true,
      found: "HTTP 200",
    });
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it("http: a server that accepts and never answers fails the probe after its timeout", async () => {
    const port = await listen(createServer(() => {}));
    const started = Date.now();
    const r = await probeHttp(check({ port }), { host, timeoutMs: 300 });
    expect(r.ok).toBe(false);
    // a loaded box may not even connect in time: either is a timeout
    expect(r.found).toMatch(
      new RegExp(`^no (HTTP answer from|connection to) 127.0.0.1:${port} within 300 ms$`),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it("http: not HTTP at all", async () => {
    const port = await listen(createServer((s) => s.end("SSH-2.0-OpenSSH\r\n")));
    expect(await probeHttp(check({ port }), o)).toEqual({
      ok: false,
      found: 'not an HTTP answer: "SSH-2.0-OpenSSH\\r\\n"',
    });
  });

  it("tcp: a listener answers; a closed port is named in what was found", async () => {
    const port = await listen(createServer());
    expect(await probeTcp(tcpCheck({ port }, "t"), o)).toEqual({
      ok: true,
      found: `a connection to 127.0.0.1:${port}`,
    });
    const closed = await closedPort();
    const r = await probeTcp(tcpCheck({ port: closed }, "t"), o);
    expect(r.ok).toBe(false);
    expect(r.found).toContain(`127.0.0.1:${closed}`);
  });

  it("the step's signal ends a probe with its reason", async () => {
    const port = await listen(createServer(() => {}));
    const ac = new AbortController();
    const probing = probeHttp(check({ port }), { host, timeoutMs: 120_000, signal: ac.signal });
    await new Promise((r) => setTimeout(r, 50));
    ac.abort(new Error("step timed out"));
    await expect(probing).rejects.toThrow("step timed out");
  });

  it("a provider's probe that never settles fails after the probe's timeout", async () => {
    const checks = healthChecks({ exec: { check: (v: unknown) => v as string[], describe: () => "exit 0" } });
    const h = checks.parse({ exec: ["x"] }, "health")!;
    const r = await checks.probe(h, { host, timeoutMs: 200 }, { exec: () => new Promise(() => {}) });
    expect(r).toEqual({ ok: false, found: "no answer within 200 ms", timedOut: true });
    const failing = await checks.probe(h, o, {
      exec: async () => {
        throw new Error("exit 3: boom\nmore");
      },
    });
    expect(failing).toEqual({ ok: false, found: "exit 3: boom" });
  });
});

describe("kit health: pollHealth", () => {
  it("waits until the service answers, then stops", async () => {
    let calls = 0;
    const port = await http((_req, res) => {
      calls++;
      res.writeHead(calls < 3 ? 503 : 200).end();
    });
    const h = check({ port });
    const r = await pollHealth({
      timeoutMs: 120_000,
      intervalMs: 10,
      round: (ms) => probeHttp(h, { host, timeoutMs: ms }),
    });
    expect(r).toMatchObject({ ok: true, found: "HTTP 200" });
    expect(calls).toBe(3);
  });

  it("ends at once on a final round; after timeoutMs with the last thing found", async () => {
    const final = await pollHealth({
      timeoutMs: 120_000,
      intervalMs: 10,
      round: async () => ({ ok: false, found: "exited", final: true }),
    });
    expect(final).toMatchObject({ ok: false, reason: "final", found: "exited" });
    let rounds = 0;
    const late = await pollHealth({
      timeoutMs: 200,
      intervalMs: 10,
      round: async () => ({ ok: false, found: `HTTP 50${rounds++ % 10}` }),
    });
    expect(late).toMatchObject({ ok: false, reason: "timeout" });
    // a last probe cut short by the end of the wait does not hide what the earlier ones found
    let n = 0;
    const cut = await pollHealth({
      timeoutMs: 300,
      intervalMs: 10,
      round: async (ms) =>
        n++ === 0
          ? { ok: false, found: "exit code 3" }
          : new Promise((r) =>
              setTimeout(() => r({ ok: false, found: `no answer within ${ms} ms`, timedOut: true }), ms),
            ),
    });
    expect(cut).toMatchObject({ ok: false, reason: "timeout", found: "exit code 3" });
    expect(late.elapsedMs).toBeGreaterThanOrEqual(200);
    expect(rounds).toBeGreaterThan(1);
  });
});

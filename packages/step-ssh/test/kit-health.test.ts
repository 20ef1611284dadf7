// The kit's shared health probes over a real SSH connection: `host.connect` opens a direct-tcpip
// channel, so the probe runs on the host's side of the link (sshd runs on this machine, so a server
// started here listens on the host's 127.0.0.1).
import { once } from "node:events";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { httpCheck, pollHealth, probeHttp, probeTcp, tcpCheck } from "@atomkit/core/kit";
import { freePort } from "@atomkit/testkit";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { noSshd, testHost } from "./_testbed";

describe.skipIf(noSshd)("kit health probes over sshHost", () => {
  const ssh = testHost();
  afterAll(() => ssh.close());
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    sockets.clear();
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  async function listen(server: Server): Promise<number> {
    const port = await freePort();
    servers.push(server);
    server.on("connection", (s: Socket) => {
      sockets.add(s);
      s.once("close", () => sockets.delete(s));
    });
    server.listen(port, "127.0.0.1");
    await once(server, "listening");
    return port;
  }

  it("http: the status and body, judged on the host's side of the link", async () => {
    const port = await listen(
      createHttpServer((req, res) => res.writeHead(req.url === "/down" ? 503 : 200).end("release v2")),
    );
    const o = { host: ssh, timeoutMs: 30_000 };
    expect(await probeHttp(httpCheck({ port, expect: { body: "v2" } }, "h"), o)).toEqual({
      ok: true,
      found: "HTTP 200",
    });
    expect(await probeHttp(httpCheck({ port, path: "/down" }, "h"), o)).toEqual({
      ok: false,
      found: "HTTP 503",
    });
    expect(await probeHttp(httpCheck({ port, path: "/down", expect: 503 }, "h"), o)).toMatchObject({
      ok: true,
    });
  });

  it("tcp: a listener, and a port nobody listens on (named in what was found)", async () => {
    const port = await listen(createServer());
    const o = { host: ssh, timeoutMs: 30_000 };
    expect(await probeTcp(tcpCheck({ port }, "t"), o)).toMatchObject({ ok: true });
    const closed = await freePort();
    const r = await probeTcp(tcpCheck({ port: closed }, "t"), o);
    expect(r.ok).toBe(false);
    expect(r.found).toContain(`127.0.0.1:${closed}`);
    // the link survives a refused channel: the next probe goes through it
    expect(await probeTcp(tcpCheck({ port }, "t"), o)).toMatchObject({ ok: true });
  });

  it("a stalled server fails the probe at its timeout; the step's signal ends a probe", async () => {
    const port = await listen(createServer(() => {}));
    const r = await probeHttp(httpCheck({ port }, "h"), { host: ssh, timeoutMs: 500 });
    // on a loaded box the channel itself may take longer than the probe may: either is a timeout
    expect(r.ok).toBe(false);
    expect(r.found).toMatch(
      new RegExp(`^no (HTTP answer from|connection to) 127.0.0.1:${port} within 500 ms$`),
    );
    const ac = new AbortController();
    const probing = probeHttp(httpCheck({ port }, "h"), { host: ssh, timeoutMs: 600_000, signal: ac.signal });
    setTimeout(() => ac.abort(new Error("cancelled")), 50);
    await expect(probing).rejects.toThrow("cancelled");
  });

  it("pollHealth waits over the link until the service comes up", async () => {
    const port = await freePort();
    const h = httpCheck({ port }, "h");
    let rounds = 0;
    const r = await pollHealth({
      timeoutMs: 600_000,
      intervalMs: 20,
      round: async (ms) => {
        // the server starts only after two refused probes
        if (++rounds === 3) {
          const server = createHttpServer((_req, res) => res.end("up"));
          servers.push(server);
          server.listen(port, "127.0.0.1");
          await once(server, "listening");
        }
        return probeHttp(h, { host: ssh, timeoutMs: ms });
      },
    });
    expect(r).toMatchObject({ ok: true, found: "HTTP 200" });
    expect(rounds).toBe(3);
  });
});

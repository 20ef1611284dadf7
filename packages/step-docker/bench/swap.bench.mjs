// step-docker benchmark: how long a docker.swap takes, and the window during which nothing answers the
// service's HTTP port, for the swap and for its undo, in both orders (and stop-first on an sshHost when
// the testbed sshd runs). Baseline, measured in the same run, interleaved: the same replacement done by
// hand with plain API calls on the local socket (stop old → run new → poll until it answers; and
// back), with no health gate, renames, labels or trail.
// A separate thread polls the port(s) every 10 ms. Medians of the rounds.
// Run after `pnpm build`, with the testbed dockerd up: node bench/swap.bench.mjs [rounds]
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { atom, localHost, memoryTrail, run, undoRun } from "@atomkit/core";
import { sshHost } from "@atomkit/step-ssh";
import Docker from "dockerode";
import { runContainer, steps, swapContainer } from "../dist/index.js";

const ROUNDS = Number(process.argv[2] ?? 7);
const envFile = (f) => {
  const out = {};
  const path = `${process.env.ATOMKIT_TESTBED_DIR ?? "/tmp/atomkit-testbed"}/${f}`;
  if (existsSync(path))
    for (const l of readFileSync(path, "utf8").split("\n")) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(l.trim());
      if (m) out[m[1]] = m[2].replace(/^"(.*)"$/, "$1");
    }
  return {
    ...out,
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("ATOMKIT_"))),
  };
};
const denv = envFile("dockerd.env");
const senv = envFile("sshd.env");
const SOCKET = denv.ATOMKIT_DOCKER_SOCKET ?? "/var/run/docker.sock";
const V1 = denv.ATOMKIT_DOCKER_IMAGE_V1 ?? "atomkit-test/busybox:1";
const V2 = denv.ATOMKIT_DOCKER_IMAGE_V2 ?? "atomkit-test/busybox:2";
const docker = new Docker({ socketPath: SOCKET });
const PREFIX = `atk-bench-${process.pid}`;
const stateDir = await mkdtemp(join(tmpdir(), "atk-docker-bench-"));
const host = localHost({ stateDir });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
const httpd = (port) => ["httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", "/www"];
// the daemon of a remote machine: the steps run on an sshHost and reach its socket over that connection
const remote =
  senv.ATOMKIT_SSH_KEY && existsSync(senv.ATOMKIT_SSH_KEY)
    ? sshHost({
        host: senv.ATOMKIT_SSH_HOST ?? "127.0.0.1",
        port: Number(senv.ATOMKIT_SSH_PORT ?? 2222),
        username: senv.ATOMKIT_SSH_USER ?? "root",
        privateKeyPath: senv.ATOMKIT_SSH_KEY,
        knownHosts: senv.ATOMKIT_SSH_KNOWN_HOSTS,
        stateDir,
      })
    : undefined;

// --- the poller: its own thread and event loop, so the swap's work never delays a probe ---
const poller = new Worker(
  `
  const { parentPort } = require("node:worker_threads");
  const net = require("node:net");
  let ports = [];
  const samples = [];
  const probe = (port) => new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    let out = "";
    const done = (ok) => { s.destroy(); clearTimeout(t); resolve(ok); };
    const t = setTimeout(() => done(false), 200);
    s.on("connect", () => s.write("GET / HTTP/1.0\\r\\n\\r\\n"));
    s.on("data", (d) => { out += d; });
    s.on("end", () => done(/^HTTP\\/1\\.[01] 200/.test(out)));
    s.on("error", () => done(false));
  });
  parentPort.on("message", (m) => {
    if (m.ports) { ports = m.ports; samples.length = 0; }
    if (m.take) { parentPort.postMessage(samples.splice(0)); }
  });
  (async () => {
    for (;;) {
      if (ports.length) {
        const t = Date.now();
        const ok = (await Promise.all(ports.map(probe))).some(Boolean);
        samples.push([t, ok]);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
`,
  { eval: true },
);
poller.unref();
const watch = (ports) => poller.postMessage({ ports });
const take = () =>
  new Promise((resolve) => {
    poller.once("message", resolve);
    poller.postMessage({ take: true });
  });

/** Longest time between a sample that answered and the next one that did, within [t0, t1]. */
function gap(samples, t0, t1) {
  let lastOk;
  let worst = 0;
  let failed = false;
  for (const [t, ok] of samples) {
    if (t < t0 - 50) {
      if (ok) lastOk = t;
      continue;
    }
    if (ok) {
      if (failed && lastOk !== undefined) worst = Math.max(worst, t - lastOk);
      failed = false;
      lastOk = t;
    } else failed = true;
    if (t > t1 && !failed) break;
  }
  return failed ? Number.NaN : worst;
}

async function timed(fn) {
  await sleep(60); // let the poller see the service answering first
  const t0 = Date.now();
  await fn();
  const t1 = Date.now();
  await sleep(60);
  return { ms: t1 - t0, t0, t1 };
}

async function waitAnswer(port) {
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(500) });
      if (r.ok) return;
    } catch {}
    await sleep(5);
  }
}

async function removeAll() {
  for (const x of await docker.listContainers({ all: true })) {
    if ((x.Names[0] ?? "").startsWith(`/${PREFIX}`)) await docker.getContainer(x.Id).remove({ force: true });
  }
}

const median = (xs) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : Number.NaN;
};

/** One configuration: rounds of (atomkit swap + undo) interleaved with (baseline swap + back). */
async function bench(label, order, host) {
  const conn = { socketPath: SOCKET };
  const name = `${PREFIX}-${label.replace(/\W+/g, "-")}`;
  const p1 = await freePort();
  const p2 = order === "start-first" ? await freePort() : p1;
  const ports = [...new Set([p1, p2])];
  // v1 deployed with docker.run: its health check is kept in a label, which the undo of a swap uses
  const first = await run(
    atom("bench-v1", {
      steps: [
        runContainer({
          docker: conn,
          name,
          image: V1,
          cmd: httpd(p1),
          init: true,
          stopTimeoutMs: 2000,
          health: { http: { port: p1 }, intervalMs: 10 },
        }),
      ],
    }),
    { host, lock: false },
  );
  if (first.status !== "committed") throw first.error;
  const step = () =>
    swapContainer({
      docker: conn,
      name,
      image: V2,
      cmd: httpd(p2),
      order,
      init: true,
      stopTimeoutMs: 2000,
      health: { http: { port: p2 }, intervalMs: 10, timeoutMs: 10_000 },
    });
  const r = {
    swap: [],
    swapGap: [],
    undo: [],
    undoGap: [],
    baseSwap: [],
    baseSwapGap: [],
    baseUndo: [],
    baseUndoGap: [],
  };
  for (let i = 0; i < ROUNDS; i++) {
    watch(ports);
    // atomkit: run + undo of the committed run (from its trail)
    const trail = memoryTrail();
    let runId;
    const a = await timed(async () => {
      const res = await run(atom("bench", { steps: [step()] }), { host, trail, lock: false });
      if (res.status !== "committed") throw res.error;
      runId = res.runId;
    });
    const b = await timed(async () => {
      const res = await undoRun(trail, runId, { host, steps: [...steps], lock: false });
      if (res.status !== "rolled-back") throw res.error;
    });
    // baseline: the same by hand, no health gate beyond polling, no renames, no trail
    const old = docker.getContainer(name);
    let fresh;
    const c = await timed(async () => {
      if (order === "stop-first") await old.stop({ t: 2 });
      fresh = await docker.createContainer({
        name: `${name}-base`,
        Image: V2,
        Cmd: httpd(p2),
        HostConfig: { NetworkMode: "host", Init: true },
      });
      await fresh.start();
      await waitAnswer(p2);
      if (order === "start-first") await old.stop({ t: 2 });
    });
    const d = await timed(async () => {
      if (order === "start-first") {
        await old.start();
        await waitAnswer(p1);
      }
      await fresh.stop({ t: 2 });
      await fresh.remove({ force: true });
      if (order === "stop-first") {
        await old.start();
        await waitAnswer(p1);
      }
    });
    const samples = await take();
    r.swap.push(a.ms);
    r.swapGap.push(gap(samples, a.t0, a.t1));
    r.undo.push(b.ms);
    r.undoGap.push(gap(samples, b.t0, b.t1));
    r.baseSwap.push(c.ms);
    r.baseSwapGap.push(gap(samples, c.t0, c.t1));
    r.baseUndo.push(d.ms);
    r.baseUndoGap.push(gap(samples, d.t0, d.t1));
  }
  watch([]);
  const m = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, median(v)]));
  const row = (what, t, g, bt, bg) =>
    `  ${what.padEnd(6)} ${String(t).padStart(6)} ms  gap ${String(g).padStart(4)} ms   | by hand ${String(bt).padStart(5)} ms  gap ${String(bg).padStart(4)} ms`;
  console.log(`${label} (${ROUNDS} rounds, medians; gap = longest time nothing answered, 10 ms polling)`);
  console.log(row("swap", m.swap, m.swapGap, m.baseSwap, m.baseSwapGap));
  console.log(row("undo", m.undo, m.undoGap, m.baseUndo, m.baseUndoGap));
}

try {
  await removeAll();
  await bench("stop-first, local socket", "stop-first", host);
  await bench("start-first, local socket (new one on a second port)", "start-first", host);
  if (remote) await bench("stop-first, daemon over SSH", "stop-first", remote);
  else console.log("(no testbed sshd: the SSH row is skipped)");
} finally {
  await removeAll();
  await remote?.close();
  await poller.terminate();
  await rm(stateDir, { recursive: true, force: true });
}

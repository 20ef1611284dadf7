// step-process benchmark: time from apply to healthy for the test server, and the stop + undo round
// trip, against a plain spawn + poll and kill + spawn measured in the same run (medians of interleaved
// rounds). Run after `pnpm build`: node bench/process.bench.mjs [rounds]
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { localHost, validateParams } from "@atomkit/core";
import { startProcess, stopProcess } from "../dist/index.js";

const ROUNDS = Number(process.argv[2] ?? 15);
const SERVER = fileURLToPath(new URL("../test/fixtures/server.mjs", import.meta.url));
const INTERVAL_MS = 10;

const dir = await mkdtemp(join(tmpdir(), "atomkit-process-bench-"));
const host = localHost({ stateDir: join(dir, ".state") });
const ctx = { host, signal: new AbortController().signal, log: () => {}, runId: "bench", step: "bench" };

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
const healthy = (port) =>
  new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/health" }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode === 200));
    });
    req.on("error", () => resolve(false));
    req.end();
  });
const alive = async (pid) => {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const until = async (check) => {
  while (!(await check())) await sleep(INTERVAL_MS);
};
const bind = async (step) => {
  const r = await validateParams(step);
  if (r.issues) throw new Error(JSON.stringify(r.issues));
  const d = step.definition;
  return {
    observe: () => d.observe(ctx, r.value),
    apply: (before) => d.apply(ctx, r.value, before),
    undo: (before, after) => d.undo(ctx, r.value, before, after),
  };
};

/** The baseline: what a hand-written deploy script does. */
const plainSpawn = (port, log) => {
  const fd = openSync(log, "a");
  const child = spawn(process.execPath, [SERVER, `--port=${port}`], {
    cwd: dir,
    detached: true,
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  child.unref();
  return child.pid;
};

const samples = { start: [], spawn: [], roundTrip: [], killSpawn: [] };

async function atomkitStart(i) {
  const port = await freePort();
  const health = { http: { port, path: "/health" }, timeoutMs: 10_000, intervalMs: INTERVAL_MS };
  const pidFile = join(dir, `start-${i}.pid`);
  const s = await bind(
    startProcess({ command: [process.execPath, SERVER, `--port=${port}`], cwd: dir, pidFile, health }),
  );
  const before = await s.observe();
  const t0 = performance.now();
  await s.apply(before);
  samples.start.push(performance.now() - t0);
  await s.undo(before, await s.observe());
}

async function baselineStart(i) {
  const port = await freePort();
  const t0 = performance.now();
  const pid = plainSpawn(port, join(dir, `plain-${i}.log`));
  await until(() => healthy(port));
  samples.spawn.push(performance.now() - t0);
  process.kill(-pid, "SIGTERM");
  await until(async () => !(await alive(pid)));
}

async function atomkitRoundTrip(i) {
  const port = await freePort();
  const pidFile = join(dir, `rt-${i}.pid`);
  const health = { http: { port, path: "/health" }, timeoutMs: 10_000, intervalMs: INTERVAL_MS };
  const start = await bind(
    startProcess({ command: [process.execPath, SERVER, `--port=${port}`], cwd: dir, pidFile, health }),
  );
  await start.apply(await start.observe());
  const stop = await bind(stopProcess({ pidFile, graceMs: 5_000, health }));
  const before = await stop.observe();
  const t0 = performance.now();
  await stop.apply(before);
  await stop.undo(before, await stop.observe());
  samples.roundTrip.push(performance.now() - t0);
  const running = await start.observe();
  await start.undo({ running: false }, running);
}

async function baselineKillSpawn(i) {
  const port = await freePort();
  const log = join(dir, `ks-${i}.log`);
  let pid = plainSpawn(port, log);
  await until(() => healthy(port));
  const t0 = performance.now();
  process.kill(-pid, "SIGTERM");
  await until(async () => !(await alive(pid)));
  pid = plainSpawn(port, log);
  await until(() => healthy(port));
  samples.killSpawn.push(performance.now() - t0);
  process.kill(-pid, "SIGTERM");
  await until(async () => !(await alive(pid)));
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

try {
  // one warm-up of each, not counted
  await atomkitStart(-1);
  await baselineStart(-1);
  for (const k of Object.keys(samples)) samples[k].length = 0;
  for (let i = 0; i < ROUNDS; i++) {
    // interleaved, alternating order, so drift in machine load hits both sides alike
    const pair = [
      [() => atomkitStart(i), () => baselineStart(i)],
      [() => atomkitRoundTrip(i), () => baselineKillSpawn(i)],
    ];
    for (const [a, b] of pair) {
      if (i % 2) {
        await b();
        await a();
      } else {
        await a();
        await b();
      }
    }
  }
  const row = (label, ours, base) => {
    const m = median(ours);
    const b = median(base);
    console.log(
      `${label.padEnd(34)} ${m.toFixed(1).padStart(8)} ms ${b.toFixed(1).padStart(8)} ms ${`${m - b >= 0 ? "+" : ""}${(m - b).toFixed(1)} ms`.padStart(11)} ${`x${(m / b).toFixed(2)}`.padStart(7)}`,
    );
  };
  console.log(
    `step-process bench: ${ROUNDS} interleaved rounds, health poll every ${INTERVAL_MS} ms, node ${process.version}`,
  );
  console.log(
    `${"".padEnd(34)} ${"atomkit".padStart(11)} ${"baseline".padStart(11)} ${"overhead".padStart(11)} ${"ratio".padStart(7)}`,
  );
  row("start → healthy (apply)", samples.start, samples.spawn);
  row("stop + undo (restart → healthy)", samples.roundTrip, samples.killSpawn);
  console.log(
    "baselines: spawn(detached) + poll GET /health; kill -TERM + wait gone + spawn + poll GET /health",
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}

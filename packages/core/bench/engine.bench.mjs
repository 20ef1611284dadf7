// Engine and trail overhead. Run: pnpm --filter @atomkit/core bench
//  1. engine: µs per step for 10,000 no-op steps with the in-memory trail (target < 20 µs/step), peak RSS
//  2. trail: per-step cost of the fsynced file trail vs the in-memory trail, against the raw cost of one
//     fsync on this disk measured in the same run (target ≤ 1.5 fsyncs per step)
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atom, defineStep, fileTrail, localHost, memoryTrail, run } from "../dist/index.js";

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const noop = defineStep({
  kind: "bench.noop",
  params: (p) => p,
  observe: async (_ctx, p) => p.i,
  apply: async () => {},
  undo: async () => {},
});
const host = localHost({ stateDir: mkdtempSync(join(tmpdir(), "atomkit-bench-state-")) });
const atomOf = (n) =>
  atom("bench", { steps: Array.from({ length: n }, (_, i) => noop({ i }, { name: `s${i}` })) });

async function timeRun(n, trail) {
  const a = atomOf(n);
  const t0 = process.hrtime.bigint();
  const r = await run(a, { host, trail, lock: false });
  const ns = Number(process.hrtime.bigint() - t0);
  if (r.status !== "committed") throw new Error(r.error?.message);
  return ns / n / 1000;
}

// --- 1. engine overhead ---
let peak = process.memoryUsage().rss;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
await timeRun(1000, memoryTrail()); // warm-up
const engineRounds = [];
for (let i = 0; i < 5; i++) engineRounds.push(await timeRun(10_000, memoryTrail()));
clearInterval(sampler);
const engineUs = median(engineRounds);
console.log(
  `engine: 10,000 no-op steps, in-memory trail: ${engineUs.toFixed(2)} µs/step (median of 5; target < 20) ${engineUs < 20 ? "OK" : "OVER TARGET"}`,
);
console.log(`engine: peak RSS ${(peak / 1024 / 1024).toFixed(1)} MB`);

// --- 2. file trail vs in-memory, against raw fsync ---
const dir = mkdtempSync(join(process.env.ATOMKIT_BENCH_DIR ?? tmpdir(), "atomkit-bench-trail-"));
function rawFsyncUs(count) {
  const fd = openSync(join(dir, "raw"), "a");
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    writeSync(fd, `{"t":"step","n":${i}}\n`);
    fsyncSync(fd);
  }
  const us = Number(process.hrtime.bigint() - t0) / count / 1000;
  closeSync(fd);
  return us;
}
const N = 300;
const fsyncR = [];
const fileR = [];
const memR = [];
for (let round = 0; round < 5; round++) {
  // interleaved so disk hiccups hit every measurement alike
  fsyncR.push(rawFsyncUs(N));
  fileR.push(await timeRun(N, fileTrail({ dir: join(dir, `t${round}`) })));
  memR.push(await timeRun(N, memoryTrail()));
}
const fsyncUs = median(fsyncR);
const fileUs = median(fileR);
const memUs = median(memR);
const overhead = fileUs - memUs;
const ratio = overhead / fsyncUs;
console.log(`trail: raw write+fsync on this disk: ${fsyncUs.toFixed(1)} µs (baseline)`);
console.log(`trail: file trail ${fileUs.toFixed(1)} µs/step, in-memory ${memUs.toFixed(1)} µs/step`);
console.log(
  `trail: durable trail overhead ${overhead.toFixed(1)} µs/step = ${ratio.toFixed(2)} fsyncs per step (target ≤ 1.5) ${ratio <= 1.5 ? "OK" : "OVER TARGET"}`,
);
rmSync(dir, { recursive: true, force: true });
rmSync(host.stateDir, { recursive: true, force: true });

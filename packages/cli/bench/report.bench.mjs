// How fast a fleet report is made and shown: `atomkit report` (the whole CLI process) and Chromium's
// load of the file (navigation to load event, first contentful paint), for 8 and 200 hosts × 7 steps,
// beside the floor measured in the same run: a plain page of the same size (one <pre> of text), which
// is what the browser needs just to read that many bytes.
import { execFile } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { bigFleetTrail } from "./big-fleet.mjs";

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, "../dist/bin.js");
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const browser = await chromium.launch({
  executablePath: process.env.ATOMKIT_CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

async function load(file) {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
  // a small page can reach its load event before the paint entry is recorded
  await page.waitForFunction(() => performance.getEntriesByName("first-contentful-paint").length > 0);
  const t = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const fcp = performance.getEntriesByName("first-contentful-paint")[0];
    return { load: nav.loadEventEnd - nav.startTime, fcp: fcp ? fcp.startTime : Number.NaN };
  });
  await page.close();
  return t;
}

const rows = [];
for (const hosts of [8, 200]) {
  const dir = await mkdtemp(join(tmpdir(), "atomkit-report-bench-"));
  try {
    const { trailDir, fleetId } = await bigFleetTrail(dir, { hosts, failAt: Math.ceil((hosts * 3) / 4) });
    const file = join(dir, "report.html");
    const cli = [];
    for (let i = 0; i < ROUNDS; i++) {
      const t0 = performance.now();
      await run(process.execPath, [BIN, "report", fleetId, "--trail", trailDir, "-o", file], { cwd: dir });
      cli.push(performance.now() - t0);
    }
    const size = (await stat(file)).size;
    // the floor: the same number of bytes as one plain <pre>
    const plain = join(dir, "plain.html");
    await writeFile(
      plain,
      `<!doctype html><meta charset="utf-8"><pre>${"x"
        .repeat(80)
        .concat("\n")
        .repeat(Math.ceil(size / 81))}</pre>`,
    );
    const shown = [];
    const floor = [];
    for (let i = 0; i < ROUNDS; i++) {
      shown.push(await load(file));
      floor.push(await load(plain));
    }
    rows.push({
      hosts,
      steps: hosts * 7,
      "size (KB)": Math.round(size / 1024),
      "atomkit report (ms)": Math.round(median(cli)),
      "browser load (ms)": Math.round(median(shown.map((s) => s.load))),
      "first paint (ms)": Math.round(median(shown.map((s) => s.fcp))),
      "floor: plain page load (ms)": Math.round(median(floor.map((s) => s.load))),
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
await browser.close();
console.log(`atomkit report, fleet of N hosts × 7 steps with rollback-all (median of ${ROUNDS})`);
console.table(rows);

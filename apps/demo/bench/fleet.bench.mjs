// One controller, many REAL hosts: the release of DESIGN.md (drain, upload, unpack, stop, link, start +
// HTTP health, undrain) through runFleet on N sshd hosts on 127.0.0.1 (scripts/testbed/sshd-many.sh,
// 16 ports per sshd process; each host has its own directory), at several concurrencies, with the
// trail(s) asked for. Each measured fleet runs in a fresh child process, so its peak RSS is its own.
// Prints per fleet: wall time, controller CPU, peak RSS and RSS per host, open fds (peak and after the
// fleet), event-loop stall, trail writes per step, and the time per host against an 8-host fleet at the
// same concurrency; then a rollback-all per trail (the last host fails after the others committed:
// every one is undone over a new connection), and the 1,000-host extrapolation of the measured costs.
// Needs root (sshd, a login user). Stops every server and app it started, also on Ctrl-C or failure.
//   pnpm --filter @atomkit/demo bench:fleet [-- --hosts 200 --concurrency 25,50,100,200
//     --trail file,memory,postgres --rounds 1 --rollback 50 --rollback-hosts 100 --json out.json]
// postgres: `@atomkit/store-postgres` (dynamic import) with ATOMKIT_TRAIL_URL; skipped with a line when
// either is missing. ATOMKIT_BENCH_CHILD_FLAGS: node flags for the measured processes (e.g. --cpu-prof).
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const REPO = resolve(import.meta.dirname, "../../..");
const MANY = join(REPO, "scripts/testbed/sshd-many.sh");
const STEPS = 7; // drain, upload, unpack, stop, link, start, undrain
const BASELINE = 8;

if (process.argv[2] === "--child") await child(JSON.parse(process.argv[3]));
else await parent();

// ------------------------------------------------------------------------------------------------
// The orchestrator: servers, tarballs, one child per fleet, the table, cleanup.

async function parent() {
  const { values: o } = parseArgs({
    options: {
      hosts: { type: "string", default: "200" },
      concurrency: { type: "string", default: "25,50,100,200" },
      trail: { type: "string", default: "file" },
      rounds: { type: "string", default: "1" },
      rollback: { type: "string", default: "50" },
      "rollback-hosts": { type: "string", default: "100" },
      json: { type: "string" },
    },
  });
  const hosts = Number(o.hosts);
  // --concurrency "": no sweep (e.g. only the rollback-all)
  const concurrencies = o.concurrency.split(",").filter(Boolean).map(Number);
  const trails = o.trail.split(",");
  const rounds = Number(o.rounds);
  const rollbackAt = Number(o.rollback); // 0: no rollback-all run
  const rollbackHosts = Math.min(hosts, Number(o["rollback-hosts"]));
  if (!(hosts >= BASELINE) || concurrencies.some((c) => !(c >= 1)) || !(rounds >= 1) || !(rollbackHosts >= 2))
    throw new Error(`bad arguments: ${JSON.stringify(o)}`);
  for (const t of trails)
    if (!["file", "memory", "postgres"].includes(t))
      throw new Error(`--trail ${t}: file, memory or postgres`);

  const work = mkdtempSync(join(tmpdir(), "atomkit-bench-fleet-"));
  const apps = [];
  const children = new Set();
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    for (const c of children) c.kill("SIGKILL");
    for (let i = 0; i < hosts; i++) {
      try {
        const pid = Number(readFileSync(join(work, `hosts/h${i}/app.pid`), "utf8").trim());
        if (pid > 1) process.kill(pid, "SIGKILL");
      } catch {}
    }
    try {
      execFileSync("bash", [MANY, "stop"], { stdio: ["ignore", "ignore", "inherit"] });
    } catch {}
    rmSync(work, { recursive: true, force: true, maxRetries: 5 });
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"])
    process.on(sig, () => {
      console.error(`\nbench:fleet: ${sig}: stopping what it started`);
      cleanup();
      process.exit(130);
    });

  try {
    const first = await freeRange(3000, hosts);
    const env = Object.fromEntries(
      execFileSync("bash", [MANY, "start", String(first), String(hosts)], {
        stdio: ["ignore", "pipe", "inherit"],
      })
        .toString()
        .trim()
        .split("\n")
        .map((l) => l.split("=")),
    );
    const listeners = execFileSync("bash", [MANY, "pids"]).toString().trim().split("\n").map(Number);
    for (let i = 0; i < hosts; i++) apps.push(await freePort(new Set(apps)));
    for (let i = 0; i < hosts; i++) {
      mkdirSync(join(work, `hosts/h${i}/releases`), { recursive: true });
      mkdirSync(join(work, `hosts/h${i}/uploads`), { recursive: true });
    }
    // the hosts' login user writes there
    chmodSync(work, 0o755);
    execFileSync("chown", ["-R", env.ATOMKIT_FLEET_USER, join(work, "hosts")]);
    const setup = {
      work,
      firstPort: first,
      user: env.ATOMKIT_FLEET_USER,
      key: env.ATOMKIT_FLEET_KEY,
      known: env.ATOMKIT_FLEET_KNOWN_HOSTS,
      apps,
    };

    let version = 0;
    const fleet = async (spec) => {
      const v = `v${++version}`;
      const tarball = await buildTarball(work, v);
      const cpu0 = serverCpu(listeners);
      const busy0 = machineBusy();
      const serverRss = sampleServerRss();
      const out = await runChild({ ...setup, ...spec, version: v, tarball }, children);
      out.serverCpuS = serverCpu(listeners) - cpu0;
      out.machineBusyS = machineBusy() - busy0;
      out.serverPeakRssMb = serverRss.stop();
      rmSync(tarball, { force: true });
      if (out.check.length) throw new Error(`${v} (${spec.label}): ${out.check.slice(0, 5).join("; ")}`);
      // keep the releases the next fleet may still need (current and the one before)
      prune(work, spec.hosts, v);
      return out;
    };

    const box = `${readFileSync("/proc/cpuinfo", "utf8").match(/^processor/gm)?.length} cores, load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")} at start`;
    // every host gets a release and a running app first (untimed): later fleets replace a live one
    await fleet({ label: "warm-up", trail: "memory", hosts, concurrency: 50 });
    const rows = [];
    const rollbacks = [];
    for (const trail of trails) {
      if (trail === "postgres") {
        const why = await postgresMissing();
        if (why) {
          console.log(`postgres trail: skipped (${why})`);
          continue;
        }
      }
      for (const c of concurrencies) {
        const runs = [];
        for (let r = 0; r < rounds; r++) {
          const small = await fleet({
            label: `${trail} ${BASELINE}@${Math.min(c, BASELINE)}`,
            trail,
            hosts: BASELINE,
            concurrency: Math.min(c, BASELINE),
          });
          const big = await fleet({ label: `${trail} ${hosts}@${c}`, trail, hosts, concurrency: c });
          runs.push({ ...big, perHostVs8: big.wallS / hosts / (small.wallS / BASELINE) });
          console.error(`bench:fleet: ${trail} ${hosts} hosts @${c}: ${big.wallS.toFixed(1)} s`);
        }
        rows.push({ trail, concurrency: c, ...medianOf(runs) });
      }
      if (rollbackAt) {
        const rb = await fleet({
          label: `${trail} rollback-all ${rollbackHosts}@${rollbackAt}`,
          trail,
          hosts: rollbackHosts,
          concurrency: rollbackAt,
          failLast: true,
        });
        console.error(
          `bench:fleet: ${trail} rollback-all of ${rollbackHosts} hosts: ${rb.wallS.toFixed(1)} s`,
        );
        rollbacks.push(rb);
      }
    }
    const box2 = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
    print({ hosts, rounds, rows, rollbacks, rollbackAt, box: `${box}, ${box2} at the end` });
    if (o.json) writeFileSync(o.json, `${JSON.stringify({ hosts, rows, rollbacks }, null, 1)}\n`);
  } finally {
    cleanup();
  }
}

function print({ hosts, rounds, rows, rollbacks, rollbackAt, box }) {
  const head = [
    "trail",
    "conc",
    "wall s",
    "ctl CPU s",
    "CPU ms/host",
    "peak RSS MB",
    "RSS/host MB",
    "fds peak",
    "fds after",
    "heap MB",
    "bufs MB",
    "stall ms",
    "appends/step",
    "fsyncs/step",
    "lists/host",
    "t/host vs 8",
    "sshd CPU s",
    "sshd RSS MB",
    "box CPU s",
  ];
  const line = (cells) =>
    cells.map((c, i) => String(c).padStart(i === 0 ? 8 : Math.max(7, head[i].length))).join(" ");
  console.log(
    `\n${hosts} hosts: sshd on 127.0.0.1 (16 ports per sshd process, a host dir each), release ~1 MB, the full release atom; ${rounds > 1 ? `median of ${rounds} rounds` : "1 round"}; ${box}`,
  );
  console.log(line(head));
  for (const r of rows) {
    console.log(
      line([
        r.trail,
        r.concurrency,
        r.wallS.toFixed(1),
        r.cpuS.toFixed(1),
        ((r.cpuS / hosts) * 1000).toFixed(0),
        r.peakRssMb.toFixed(0),
        r.rssPerHostMb.toFixed(2),
        r.fdsPeak,
        r.fdsAfter,
        r.peakHeapMb.toFixed(0),
        r.peakBuffersMb.toFixed(0),
        r.stallMs.toFixed(0),
        r.appendsPerStep.toFixed(2),
        r.syncsPerStep.toFixed(2),
        r.listsPerHost.toFixed(2),
        `${r.perHostVs8.toFixed(2)}×`,
        r.serverCpuS.toFixed(1),
        r.serverPeakRssMb.toFixed(0),
        r.machineBusyS.toFixed(0),
      ]),
    );
  }
  for (const rb of rollbacks) {
    const n = Object.values(rb.states).reduce((a, b) => a + b, 0);
    console.log(
      `rollback-all, ${rb.trail} trail, ${n} hosts at concurrency ${rollbackAt}: the last host fails after the others committed; ` +
        `${rb.states["rolled-back"] ?? 0}/${n} rolled back (each back on its previous release on disk), ${rb.errors} error(s); ` +
        `${rb.wallS.toFixed(1)} s, ${rb.cpuS.toFixed(1)} CPU s, peak RSS ${rb.peakRssMb.toFixed(0)} MB, fds peak ${rb.fdsPeak} (after ${rb.fdsAfter}), ` +
        `${rb.listsPerHost.toFixed(1)} listRuns and ${rb.readsPerHost.toFixed(0)} run reads per host`,
    );
  }
  console.log(
    "ctl = the controller process; RSS/host = (peak RSS − RSS before the fleet) / hosts; heap, bufs = peak JS heap and Buffer memory;",
  );
  console.log(
    "stall = longest event-loop delay; appends/fsyncs per step = trail appends (synced ones) / (hosts × 7 steps); lists/host = listRuns",
  );
  console.log(
    "calls per host; t/host vs 8 = (wall / hosts) ÷ (wall / 8) of an 8-host fleet at min(conc, 8); sshd CPU = every sshd listener with",
  );
  console.log(
    "the sessions it reaped (shells, sftp-server, tar); sshd RSS = peak sum over sshd + sftp-server; box CPU = busy CPU s of the machine.",
  );
  extrapolate(rows, hosts);
}

/**
 * The measured costs scaled to 1,000 hosts: peak RSS and fds fitted as a + b × hosts in flight over the
 * concurrencies measured (they follow concurrency, not hosts, since each host's connection is closed
 * when its run ends), plus what the fleet keeps per host; CPU and this box's time per host × 1,000.
 */
function extrapolate(rows, hosts) {
  const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  for (const trail of [...new Set(rows.map((r) => r.trail))]) {
    const rs = rows.filter((r) => r.trail === trail);
    const line = (y) => {
      const xs = rs.map((r) => Math.min(r.concurrency, hosts));
      const ys = rs.map(y);
      const mx = xs.reduce((a, x) => a + x, 0) / xs.length;
      const my = ys.reduce((a, v) => a + v, 0) / ys.length;
      const sxx = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
      const slope = sxx ? xs.reduce((a, x, i) => a + (x - mx) * (ys[i] - my), 0) / sxx : 0;
      return { a: my - slope * mx, b: slope };
    };
    const rss = line((r) => r.peakRssMb);
    const fds = line((r) => r.fdsPeak);
    const keptMb = median(rs.map((r) => r.retainedKbPerHost)) / 1024;
    const cpuMs = median(rs.map((r) => (r.cpuS / hosts) * 1000));
    const wallS = median(rs.map((r) => r.wallS / hosts));
    const at = (c) => (rss.a + rss.b * c + (1000 - hosts) * keptMb).toFixed(0);
    console.log(
      `1,000 hosts, ${trail} trail: peak RSS ≈ ${rss.a.toFixed(0)} MB + ${rss.b.toFixed(2)} MB per host in flight + ` +
        `${(keptMb * 1024).toFixed(0)} KB kept per host = ${at(50)} MB at concurrency 50, ${at(200)} MB at 200 ` +
        `(${(Number(at(50)) / 1000).toFixed(2)} MB per host); fds ≈ ${fds.a.toFixed(0)} + ${fds.b.toFixed(1)} per host in flight; ` +
        `controller CPU ≈ ${cpuMs.toFixed(0)} ms × 1,000 = ${cpuMs.toFixed(0)} s on one thread (the floor of the wall time at any ` +
        `concurrency); wall on this box ≈ ${(wallS * 1000).toFixed(0)} s`,
    );
  }
}

function medianOf(runs) {
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const out = { ...runs[0] };
  for (const k of Object.keys(out)) if (typeof out[k] === "number") out[k] = med(runs.map((r) => r[k]));
  return out;
}

function runChild(spec, children) {
  return new Promise((resolvePromise, reject) => {
    // ATOMKIT_BENCH_CHILD_FLAGS: node flags for the measured process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p"
    const flags = (process.env.ATOMKIT_BENCH_CHILD_FLAGS ?? "").split(" ").filter(Boolean);
    const args = [...flags, "--expose-gc", import.meta.filename, "--child", JSON.stringify(spec)];
    const c = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.add(c);
    let out = "";
    c.stdout.on("data", (d) => {
      out += d;
    });
    c.on("error", reject);
    c.on("close", (code, signal) => {
      children.delete(c);
      if (code !== 0) return reject(new Error(`${spec.label}: child exited ${code ?? signal}`));
      resolvePromise(JSON.parse(out.trim().split("\n").pop()));
    });
  });
}

async function buildTarball(work, version) {
  const { create } = await import("tar");
  const { SERVER_SOURCE } = await import("../dist/lib.js");
  const src = join(work, `src-${version}`);
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, "server.cjs"), SERVER_SOURCE);
  writeFileSync(join(src, "VERSION"), `${version}\n`);
  // ~1 MB that does not compress: the size a small app's release has
  writeFileSync(join(src, "assets.bin"), randomBytes(1_000_000));
  const file = join(work, `app-${version}.tar.gz`);
  await create({ gzip: { level: 1 }, file, cwd: src, portable: true }, [
    "server.cjs",
    "VERSION",
    "assets.bin",
  ]);
  rmSync(src, { recursive: true, force: true });
  return file;
}

function prune(work, hosts, version) {
  const keep = Number(version.slice(1));
  for (let i = 0; i < hosts; i++) {
    for (const dir of ["releases", "uploads"]) {
      const d = join(work, `hosts/h${i}/${dir}`);
      for (const name of readdirSync(d)) {
        const n = Number(/^(?:app-)?v(\d+)/.exec(name)?.[1]);
        if (n && n < keep - 1) rmSync(join(d, name), { recursive: true, force: true });
      }
    }
  }
}

async function postgresMissing() {
  if (!process.env.ATOMKIT_TRAIL_URL) return "ATOMKIT_TRAIL_URL is not set";
  try {
    await import("@atomkit/store-postgres");
    return undefined;
  } catch (error) {
    return `@atomkit/store-postgres cannot be loaded: ${error.message.split("\n")[0]}`;
  }
}

function canListen(port) {
  return new Promise((ok) => {
    const s = createServer();
    s.once("error", () => ok(false));
    s.listen(port, "127.0.0.1", () => s.close(() => ok(true)));
  });
}

async function freeRange(from, count) {
  for (let start = from; start + count < 65000; ) {
    let p = start;
    while (p < start + count && (await canListen(p))) p++;
    if (p === start + count) return start;
    start = p + 1;
  }
  throw new Error(`no ${count} free ports in a row from ${from}`);
}

async function freePort(taken) {
  for (;;) {
    const port = await new Promise((ok, fail) => {
      const s = createServer();
      s.once("error", fail);
      s.listen(0, "127.0.0.1", () => {
        const { port } = s.address();
        s.close(() => ok(port));
      });
    });
    if (!taken.has(port)) return port;
  }
}

/** CPU seconds of the sshd listeners, with every session they forked and reaped. */
function serverCpu(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {}
  }
  return ticks / 100;
}

function machineBusy() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100;
}

/** Peak summed RSS of every sshd and sftp-server process on the machine, sampled each 0.5 s. */
function sampleServerRss() {
  let peak = 0;
  const sample = () => {
    let kb = 0;
    for (const pid of readdirSync("/proc")) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const s = readFileSync(`/proc/${pid}/status`, "utf8");
        const name = /^Name:\s+(\S+)/m.exec(s)?.[1];
        if (name === "sshd" || name === "sftp-server") kb += Number(/^VmRSS:\s+(\d+)/m.exec(s)?.[1] ?? 0);
      } catch {}
    }
    peak = Math.max(peak, kb);
  };
  sample();
  const timer = setInterval(sample, 500);
  return {
    stop() {
      clearInterval(timer);
      return peak / 1024;
    },
  };
}

// ------------------------------------------------------------------------------------------------
// One measured fleet, alone in its process.

async function child(spec) {
  const { monitorEventLoopDelay } = await import("node:perf_hooks");
  const { runFleet } = await import("@atomkit/core");
  const { sshHost } = await import("@atomkit/step-ssh");
  const { releaseAtom } = await import("../dist/lib.js");
  const key = readFileSync(spec.key);
  const base = (i) => join(spec.work, `hosts/h${i}`);
  const hosts = Array.from({ length: spec.hosts }, (_, i) =>
    sshHost({
      host: "127.0.0.1",
      port: spec.firstPort + i,
      username: spec.user,
      privateKey: key,
      knownHosts: spec.known,
      stateDir: join(base(i), "state"),
      name: `h${i}`,
    }),
  );
  const index = new Map(hosts.map((h, i) => [h, i]));
  const last = hosts.at(-1);
  const counts = { appends: 0, syncs: 0, records: 0, lists: 0, reads: 0 };
  const inner = await makeTrail(spec);
  const trail = counting(inner, counts);

  const fds = () => readdirSync("/proc/self/fd").length;
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const heapBefore = process.memoryUsage().heapUsed;
  const fdsBefore = fds();
  let fdsPeak = fdsBefore;
  const peak = { heapUsed: 0, arrayBuffers: 0, external: 0 };
  // every 100 ms (sampling costs CPU too); the RSS peak itself is the kernel's (maxRSS)
  const sampler = setInterval(() => {
    fdsPeak = Math.max(fdsPeak, fds());
    const m = process.memoryUsage();
    for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], m[k]);
  }, 100);
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await runFleet(
    (h) =>
      releaseAtom({
        base: base(index.get(h)),
        version: spec.version,
        tarball: spec.tarball,
        port: spec.apps[index.get(h)],
        healthTimeoutMs: 120_000,
        ...(spec.failLast && h === last ? { failAt: "start" } : {}),
      }),
    hosts,
    {
      trail,
      concurrency: spec.concurrency,
      backoffMs: 50,
      ...(spec.failLast ? { onFailure: "rollback-all" } : {}),
    },
  );
  const wallS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  loop.disable();
  clearInterval(sampler);
  const peakRss = process.resourceUsage().maxRSS * 1024;
  const fdsAfter = fds();
  // what the fleet keeps per host once it is over (its results; connections are closed)
  global.gc?.();
  const retainedKbPerHost = Math.max(0, process.memoryUsage().heapUsed - heapBefore) / 1024 / spec.hosts;

  // what the fleet says, checked on disk
  const check = [];
  const states = {};
  let errors = 0;
  for (const [i, h] of result.hosts.entries()) {
    states[h.state] = (states[h.state] ?? 0) + 1;
    const failed = h.error ?? h.result?.error ?? h.undo?.error;
    const want = spec.failLast ? "rolled-back" : "committed";
    if (h.state !== want) {
      errors++;
      check.push(`${h.host}: ${h.state} ${failed?.message ?? ""}`);
      continue;
    }
    const link = readlinkSync(join(base(i), "current"));
    if (!spec.failLast && link !== join(base(i), "releases", spec.version))
      check.push(`${h.host}: current → ${link}, not ${spec.version}`);
    if (spec.failLast && link.endsWith(`/${spec.version}`)) check.push(`${h.host}: still on ${spec.version}`);
  }
  await Promise.all(hosts.map((h) => h.close()));
  await trail.close?.();
  const hostSteps = spec.hosts * STEPS;
  process.stdout.write(
    `${JSON.stringify({
      label: spec.label,
      trail: spec.trail,
      wallS,
      cpuS: (cpu.user + cpu.system) / 1e6,
      cpuSysS: cpu.system / 1e6,
      peakRssMb: peakRss / 1e6,
      rssBeforeMb: rssBefore / 1e6,
      retainedKbPerHost,
      rssPerHostMb: (peakRss - rssBefore) / 1e6 / spec.hosts,
      fdsBefore,
      peakHeapMb: peak.heapUsed / 1e6,
      peakBuffersMb: peak.arrayBuffers / 1e6,
      fdsPeak,
      fdsAfter,
      stallMs: loop.max / 1e6,
      appendsPerStep: counts.appends / hostSteps,
      syncsPerStep: counts.syncs / hostSteps,
      recordsPerStep: counts.records / hostSteps,
      listsPerHost: counts.lists / spec.hosts,
      readsPerHost: counts.reads / spec.hosts,
      status: result.status,
      states,
      errors,
      check,
    })}\n`,
  );
  process.exit(0);
}

async function makeTrail(spec) {
  const { fileTrail, memoryTrail } = await import("@atomkit/core");
  if (spec.trail === "memory") return memoryTrail();
  if (spec.trail === "file")
    return fileTrail({ dir: join(spec.work, `trails-${spec.version}`), key: randomBytes(32) });
  const { postgresTrail } = await import("@atomkit/store-postgres");
  return postgresTrail({
    connectionString: process.env.ATOMKIT_TRAIL_URL,
    schema: `atomkit_bench_${spec.version}`,
  });
}

/** The same store, counting what the fleet asks of it. */
function counting(store, n) {
  return {
    ...store,
    async append(runId, records, opts) {
      n.appends++;
      n.records += records.length;
      if (opts?.sync) n.syncs++;
      return store.append(runId, records, opts);
    },
    async listRuns(query) {
      n.lists++;
      return store.listRuns(query);
    },
    async readRun(runId) {
      n.reads++;
      return store.readRun(runId);
    },
    ...(store.listIds ? { listIds: () => store.listIds() } : {}),
    ...(store.close ? { close: () => store.close() } : {}),
    ...(store.remove ? { remove: (id) => store.remove(id) } : {}),
  };
}

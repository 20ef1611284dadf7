// The release of DESIGN.md on 1 and on 8 REAL sshd hosts (loopback, host dirs on a tmpfs), against a
// plain bash lower bound measured in the same run, interleaved; medians and ratios.
//   atomkit: untar (validate locally, upload, extract, rename), process.stop, symlink.swap,
//            process.start + HTTP health, with the fsynced file trail, every observe and verification
//   bash:    ssh host 'mkdir -p R && tar -xzf - -C R' < release.tar.gz; one ssh: stop by pid file,
//            ln -s + mv -T, start; poll HTTP every 0.1 s
// Plus the failing deploy (health fails → verified rollback) against bash doing its own restore.
// Needs root (starts sshd on 127.0.0.1:2240-2247 and mounts a tmpfs). Run: pnpm --filter @atomkit/demo bench
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { atom, fileTrail, runFleet } from "@atomkit/core";
import { untar } from "@atomkit/step-fs";
import { startProcess, stopProcess } from "@atomkit/step-process";
import { sshHost } from "@atomkit/step-ssh";
import { swapSymlink } from "@atomkit/step-symlink";
import { create } from "tar";
import { SERVER_SOURCE } from "../dist/lib.js";

const ROUNDS = Number(process.env.ATOMKIT_BENCH_ROUNDS ?? 5);
const PORTS = [2240, 2241, 2242, 2243, 2244, 2245, 2246, 2247];
const REPO = resolve(import.meta.dirname, "../../..");
const TB = process.env.ATOMKIT_TESTBED_DIR ?? "/tmp/atomkit-testbed";
const MNT = "/tmp/atomkit-bench-tmpfs";
const HEALTH_TIMEOUT_MS = 1_500;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sh = (cmd, args, opts = {}) =>
  execFileSync(cmd, args, { stdio: ["ignore", "pipe", "inherit"], ...opts }).toString();

// --- setup: sshd ×8, tmpfs, the release tarballs ---
sh("bash", [join(REPO, "scripts/testbed/sshd.sh"), "start", ...PORTS.map(String)]);
const KEY = join(TB, "client/id_ed25519");
const KNOWN = join(TB, "known_hosts");
mkdirSync(MNT, { recursive: true });
sh("mount", ["-t", "tmpfs", "-o", "size=3g", "tmpfs", MNT]);
const work = mkdtempSync(join(tmpdir(), "atomkit-bench-release-"));

async function buildTarball(version, broken) {
  const src = join(work, `src-${version}`);
  mkdirSync(join(src, "assets"), { recursive: true });
  writeFileSync(join(src, "server.cjs"), SERVER_SOURCE);
  writeFileSync(join(src, "VERSION"), `${version}\n`);
  if (broken) writeFileSync(join(src, "BROKEN"), "1\n");
  // 2,000 files of incompressible data: ~20 MB gzipped
  for (let i = 0; i < 2000; i++) writeFileSync(join(src, "assets", `f${i}.bin`), randomBytes(10_240));
  const file = join(work, `app-${version}.tar.gz`);
  await create({ gzip: { level: 1 }, file, cwd: src, portable: true }, ["."]);
  rmSync(src, { recursive: true, force: true });
  return file;
}
const good = await buildTarball("good", false);
const bad = await buildTarball("bad", true);
const mb = (Number(sh("stat", ["-c", "%s", good])) / 1e6).toFixed(1);

const portBase = 23_000;
let round = 0;
const hostDir = (i, kind) => `${MNT}/${kind}-host-${i}`;

// --- atomkit ---
const hosts = PORTS.map((port, i) =>
  sshHost({
    host: "127.0.0.1",
    port,
    username: "root",
    privateKey: readFileSync(KEY),
    knownHosts: KNOWN,
    stateDir: `${MNT}/state-${i}`,
    name: `bench-${port}`,
  }),
);
for (const h of hosts) await h.exec(["true"]); // connect once, as a deploy tool keeps its connection
const trail = fileTrail({ dir: join(work, "trails") });

function releaseFor(i, version, tarball, port) {
  const b = hostDir(i, "ak");
  return atom("release", {
    steps: [
      untar({ archive: tarball, path: `${b}/releases/${version}` }, { name: "unpack" }),
      stopProcess({ pidFile: `${b}/app.pid`, graceMs: 3_000 }, { name: "stop" }),
      swapSymlink({ link: `${b}/current`, target: `${b}/releases/${version}` }, { name: "link" }),
      startProcess(
        {
          command: [process.execPath, "server.cjs", String(port), `${b}/drain`],
          cwd: `${b}/current`,
          pidFile: `${b}/app.pid`,
          logFile: `${b}/app.log`,
          health: { http: { port, path: "/health" }, timeoutMs: HEALTH_TIMEOUT_MS, intervalMs: 100 },
        },
        { name: "start" },
      ),
    ],
  });
}

async function atomkitDeploy(n, tarball) {
  const version = `v${++round}`;
  const list = hosts.slice(0, n);
  const t0 = performance.now();
  const r = await runFleet(
    (h) => releaseFor(hosts.indexOf(h), version, tarball, portBase + hosts.indexOf(h)),
    list,
    {
      trail,
      onFailure: "rollback-host",
      maxFailures: n,
      backoffMs: 50,
    },
  );
  const ms = performance.now() - t0;
  const want = tarball === good ? "committed" : "rolled-back";
  for (const h of r.hosts)
    if (h.state !== want)
      throw new Error(
        `atomkit ${version} on ${h.host}: ${h.state} ${h.result?.error?.message ?? h.error?.message}`,
      );
  return ms;
}

// --- bash lower bound ---
function bashScript(i, version, tarball, port) {
  const b = hostDir(i, "sh");
  const ssh = `ssh -p ${PORTS[i]} -i ${KEY} -o UserKnownHostsFile=${KNOWN} -o StrictHostKeyChecking=yes -o BatchMode=yes root@127.0.0.1`;
  // wait until the old process is gone: an exited process this machine's init does not reap stays a
  // zombie, which kill -0 still finds; and a zombie leader's other threads may still hold the port
  const waitGone = `while kill -0 \\$p 2>/dev/null && { ! grep -q '^State:.*Z' /proc/\\$p/status 2>/dev/null || [ \\$(ls /proc/\\$p/task 2>/dev/null | wc -l) -gt 1 ]; }; do sleep 0.02; done`;
  // detached, its own session; the shell writes its pid and becomes the server
  const startCmd = `cd ${b}/current && setsid -f sh -c 'echo \\$\\$ > ${b}/app.pid; exec ${process.execPath} server.cjs ${port} ${b}/drain' > ${b}/app.log 2>&1 < /dev/null`;
  const health = `
    ok=0; for _ in $(seq 1 ${Math.round(HEALTH_TIMEOUT_MS / 100)}); do
      if curl -fsS -o /dev/null http://127.0.0.1:${port}/health 2>/dev/null; then ok=1; break; fi; sleep 0.1; done`;
  return `
set -u
R=${b}/releases/${version}
${ssh} "mkdir -p $R && tar -xzf - -C $R" < ${tarball} || exit 1
OLD=$(${ssh} "readlink ${b}/current 2>/dev/null || true")
${ssh} "if [ -f ${b}/app.pid ]; then p=\\$(cat ${b}/app.pid); kill \\$p 2>/dev/null; ${waitGone}; fi
  ln -s $R ${b}/current.tmp && mv -T ${b}/current.tmp ${b}/current
  ${startCmd}" || exit 1
${health}
if [ $ok = 0 ]; then
  # scripted restore: stop the new process, point current back, start the old one, wait for it
  ${ssh} "p=\\$(cat ${b}/app.pid); kill \\$p; ${waitGone}
    ln -s $OLD ${b}/current.tmp && mv -T ${b}/current.tmp ${b}/current && rm -rf $R
    ${startCmd}"
  ${health}
  [ $ok = 1 ] && exit 3 || exit 4
fi
exit 0`;
}
function runBash(script) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn("bash", ["-c", script], { stdio: ["ignore", "ignore", "inherit"] });
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000); // a hung baseline must not hang the bench
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise(code);
    });
    child.on("error", reject);
  });
}
async function bashDeploy(n, tarball) {
  const version = `v${++round}`;
  const t0 = performance.now();
  const codes = await Promise.all(
    Array.from({ length: n }, (_, i) => runBash(bashScript(i, version, tarball, portBase + 100 + i))),
  );
  const ms = performance.now() - t0;
  const want = tarball === good ? 0 : 3;
  if (codes.some((c) => c !== want)) throw new Error(`bash ${version}: exit codes ${codes.join(",")}`);
  return ms;
}

const cases = [
  ["deploy, 1 host", (f) => f(1, good)],
  ["deploy, 8 hosts", (f) => f(8, good)],
  ["failing deploy + rollback, 8 hosts", (f) => f(8, bad)],
];
const results = cases.map(() => ({ atomkit: [], bash: [] }));
try {
  // the hosts' app directories (deploy:setup), then a first untimed deploy: every host then has a
  // release and a running process to replace
  for (let i = 0; i < 8; i++)
    for (const kind of ["ak", "sh"]) mkdirSync(`${hostDir(i, kind)}/releases`, { recursive: true });
  await atomkitDeploy(8, good);
  await bashDeploy(8, good);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [k, [, run]] of cases.entries()) {
      // interleaved: the same disk and CPU weather hits both
      results[k].atomkit.push(await run(atomkitDeploy));
      results[k].bash.push(await run(bashDeploy));
    }
  }
  console.log(
    `release: ${mb} MB gzipped, 2,000 files; ${ROUNDS} interleaved rounds, medians; hosts = sshd on 127.0.0.1, dirs on tmpfs`,
  );
  for (const [k, [name]] of cases.entries()) {
    const a = median(results[k].atomkit);
    const b = median(results[k].bash);
    const target =
      name === "deploy, 8 hosts" ? ` (target ≤ 1.20×) ${a / b <= 1.2 ? "OK" : "OVER TARGET"}` : "";
    console.log(
      `${name.padEnd(36)} atomkit ${a.toFixed(0).padStart(6)} ms   bash ${b.toFixed(0).padStart(6)} ms   ratio ${(a / b).toFixed(2)}×${target}`,
    );
  }
} finally {
  for (let i = 0; i < 8; i++) {
    for (const kind of ["ak", "sh"]) {
      try {
        const pid = readFileSync(`${hostDir(i, kind)}/app.pid`, "utf8").trim();
        if (pid) process.kill(Number(pid));
      } catch {}
    }
  }
  await Promise.all(hosts.map((h) => h.close()));
  await trail.close?.();
  sh("umount", [MNT]);
  rmSync(work, { recursive: true, force: true });
  sh("bash", [join(REPO, "scripts/testbed/sshd.sh"), "stop", ...PORTS.map(String)]);
}

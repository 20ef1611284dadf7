// The release of DESIGN.md on 1 and on 8 REAL sshd hosts (loopback, host dirs on a tmpfs), Atomkit as
// users run it (one `atomkit` process per command, a deploy file for the 8 hosts) against a plain bash
// lower bound measured in the same run, interleaved; medians, ratios to the targets, controller CPU,
// where the time went per step, and the physical floor of the same bytes.
//   atomkit: untar (inspect locally, upload, extract, rename), process.stop, symlink.swap,
//            process.start + HTTP health, with the fsynced file trail, every observe and verification
//   bash:    ssh host 'mkdir -p R && tar -xzf - -C R' < release.tar.gz; one ssh: stop by pid file,
//            ln -s + mv -T, start; poll HTTP every 0.1 s (ControlMaster: one handshake per host)
// Cases: deploy 1 host, deploy 8, failing deploy (health fails → verified rollback; bash restores
// itself), fleet rollback of 8 (`atomkit rollback release`, one process; bash: current back to the
// previous release, restart, health, per host). Plus the same atom in-process (connections kept open)
// for the cost of a process. ATOMKIT_BENCH_ROUNDS (default 5; 1 to try it), ATOMKIT_BENCH_INPROCESS=0
// skips the in-process line. ATOMKIT_BENCH_USER=<name> logs every tool in as that user (created when
// missing: a system user whose shell is /bin/sh) instead of root: an SSH session costs what the login
// shell's startup files cost, and root's here may run pyenv/nvm set-up on every command (measure it: the
// bench prints a session's cost). Needs root (sshd on 127.0.0.1:2240-2247, a tmpfs). Run: pnpm bench:release
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { atom, fileTrail, runFleet } from "@atomkit/core";
import { untar } from "@atomkit/step-fs";
import { startProcess, stopProcess } from "@atomkit/step-process";
import { sshHost } from "@atomkit/step-ssh";
import { swapSymlink } from "@atomkit/step-symlink";
import { create } from "tar";
import { SERVER_SOURCE } from "../dist/lib.js";
import { bashSide } from "./release-bash.mjs";
import { makeProject, runCli, stepTimes } from "./release-cli.mjs";

const ROUNDS = Number(process.env.ATOMKIT_BENCH_ROUNDS ?? 5);
const IN_PROCESS = process.env.ATOMKIT_BENCH_INPROCESS !== "0";
const PORTS = [2240, 2241, 2242, 2243, 2244, 2245, 2246, 2247];
const REPO = resolve(import.meta.dirname, "../../..");
const TB = process.env.ATOMKIT_TESTBED_DIR ?? "/tmp/atomkit-testbed";
const MNT = "/tmp/atomkit-bench-tmpfs";
const HEALTH_TIMEOUT_MS = 1_500;
const TARGETS = {
  "deploy, 8 hosts": 1.15,
  "failing deploy + rollback, 8 hosts": 1.3,
  "fleet rollback, 8 hosts": 1.5,
};
const CPU_TARGET = 1.5;
const USER = process.env.ATOMKIT_BENCH_USER || "root";
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sh = (cmd, args, opts = {}) =>
  execFileSync(cmd, args, { stdio: ["ignore", "pipe", "inherit"], ...opts }).toString();

// --- setup: sshd ×8, tmpfs, the release tarballs ---
sh("bash", [join(REPO, "scripts/testbed/sshd.sh"), "start", ...PORTS.map(String)]);
const KEY = join(TB, "client/id_ed25519");
const KNOWN = join(TB, "known_hosts");
mkdirSync(MNT, { recursive: true });
sh("mount", ["-t", "tmpfs", "-o", "size=3g", "tmpfs", MNT]);
if (USER !== "root") {
  // sshd.sh's AuthorizedKeysFile is one absolute path: the testbed key logs in any user with a shell
  try {
    sh("id", ["-u", USER]);
  } catch {
    sh("useradd", ["--system", "--shell", "/bin/sh", "--home-dir", "/nonexistent", "--no-create-home", USER]);
  }
  // '!' (locked) is refused by sshd without PAM even for keys; '*' allows keys, never a password
  sh("usermod", ["-p", "*", "-d", MNT, USER]);
  // sshd reads the key list as the user: the (public) list readable, its directory enterable (not listable)
  for (const port of PORTS) {
    sh("chmod", ["o+x", join(TB, `sshd-${port}`)]);
    sh("chmod", ["o+r", join(TB, `sshd-${port}`, "authorized_keys")]);
  }
  sh("chown", [USER, MNT]);
}
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

// release names sort by time (bash's rollback finds the previous release that way)
let round = 0;
const nextVersion = () => `v${String(++round).padStart(4, "0")}`;
const common = {
  user: USER,
  sshPorts: PORTS,
  key: KEY,
  knownHosts: KNOWN,
  mnt: MNT,
  work,
  healthTimeoutMs: HEALTH_TIMEOUT_MS,
};

// --- atomkit, as users run it: the CLI ---
const project = join(work, "project");
mkdirSync(project);
makeProject(project, { ...common, hostDir: (i) => `${MNT}/ak-host-${i}`, appPort: (i) => 23_000 + i });
const where = {}; // per case: step → durations over hosts and rounds
async function cli(name, args, want) {
  const r = await runCli(project, args);
  if (r.code !== want)
    throw new Error(`atomkit ${args.join(" ")}: exit ${r.code}, expected ${want}\n${r.stderr}`);
  if (name) {
    where[name] ??= {};
    stepTimes(r, where[name]);
  }
  return { wall: r.wall, cpu: r.cpu };
}
const cliDeploy = (name, n, tarball) =>
  cli(
    name,
    [
      ...["run", "release", "--var", `version=${nextVersion()}`, "--var", `archive=${tarball}`],
      ...(n === 1 ? ["--host", "h0"] : ["--on-failure", "rollback-host", "--max-failures", String(n)]),
    ],
    tarball === good ? 0 : 3,
  );

// --- the same atom in-process, connections opened once and kept ---
const ipDir = (i) => `${MNT}/ip-host-${i}`;
const hosts = IN_PROCESS
  ? PORTS.map((port, i) =>
      sshHost({
        ...{ host: "127.0.0.1", port, username: USER, privateKey: readFileSync(KEY), knownHosts: KNOWN },
        ...{ stateDir: `${MNT}/state-${i}`, name: `bench-${port}` },
      }),
    )
  : [];
for (const h of hosts) await h.exec(["true"]);
const trail = fileTrail({ dir: join(work, "trails") });
function releaseFor(i, version, tarball) {
  const b = ipDir(i);
  const port = 23_050 + i;
  const health = { http: { port, path: "/health" }, timeoutMs: HEALTH_TIMEOUT_MS, intervalMs: 100 };
  return atom("release", {
    steps: [
      untar({ archive: tarball, path: `${b}/releases/${version}` }, { name: "unpack" }),
      stopProcess({ pidFile: `${b}/app.pid`, graceMs: 3_000, health }, { name: "stop" }),
      swapSymlink({ link: `${b}/current`, target: `${b}/releases/${version}` }, { name: "link" }),
      startProcess(
        {
          command: [process.execPath, "server.cjs", String(port), `${b}/drain`],
          ...{ cwd: `${b}/current`, pidFile: `${b}/app.pid`, logFile: `${b}/app.log`, health },
        },
        { name: "start" },
      ),
    ],
  });
}
async function inProcessDeploy(n, tarball) {
  const version = nextVersion();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await runFleet((h) => releaseFor(hosts.indexOf(h), version, tarball), hosts.slice(0, n), {
    ...{ trail, onFailure: "rollback-host", maxFailures: n },
  });
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const want = tarball === good ? "committed" : "rolled-back";
  for (const h of r.hosts)
    if (h.state !== want)
      throw new Error(`in-process ${version} on ${h.host}: ${h.state} ${h.error?.message}`);
  return { wall, cpu: (c.user + c.system) / 1000 };
}

// --- bash ---
const bash = bashSide({ ...common, hostDir: (i) => `${MNT}/sh-host-${i}`, appPort: (i) => 23_100 + i });
const bashDeploy = (n, tarball) => bash.deploy(n, nextVersion(), tarball, tarball === good ? 0 : 3);

const cases = [
  ["deploy, 1 host", (t) => t.deploy(1, good)],
  ["deploy, 8 hosts", (t) => t.deploy(8, good)],
  ["failing deploy + rollback, 8 hosts", (t) => t.deploy(8, bad)],
  ["fleet rollback, 8 hosts", (t) => t.rollback(8)],
];
const tools = {
  atomkit: (name) => ({
    deploy: (n, tarball) => cliDeploy(name, n, tarball),
    rollback: () => cli(name, ["rollback", "release"], 0),
  }),
  "in-process": () => ({ deploy: inProcessDeploy, rollback: async () => undefined }),
  bash: () => ({ deploy: bashDeploy, rollback: (n) => bash.rollback(n) }),
};
if (!IN_PROCESS) delete tools["in-process"];
let sessionMs = 0;
const results = cases.map(() => Object.fromEntries(Object.keys(tools).map((t) => [t, []])));
const floor = { stream: [], extract: [] };

try {
  // the hosts' app directories (deploy:setup), then two untimed deploys: every host has a release to
  // roll back to and a running process to replace
  for (let i = 0; i < 8; i++)
    for (const kind of ["ak", "ip", "sh"])
      mkdirSync(`${MNT}/${kind}-host-${i}/releases`, { recursive: true });
  if (USER !== "root") sh("chown", ["-R", USER, MNT]);
  sessionMs = await bash.sessionMs();
  for (let k = 0; k < 2; k++) {
    await cliDeploy(undefined, 8, good);
    if (IN_PROCESS) await inProcessDeploy(8, good);
    await bashDeploy(8, good);
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (const [k, [name, run]] of cases.entries()) {
      // interleaved: the same disk and CPU weather hits every tool
      for (const [tool, make] of Object.entries(tools)) {
        const m = await run(make(name));
        if (m) results[k][tool].push(m);
      }
    }
    floor.stream.push(await bash.floorStream(8, good));
    floor.extract.push(await bash.floorExtract(8, good));
    process.stderr.write(`round ${r + 1}/${ROUNDS} done\n`);
  }
  report();
} finally {
  const pids = [];
  for (let i = 0; i < 8; i++) {
    for (const kind of ["ak", "ip", "sh"]) {
      try {
        const pid = Number(readFileSync(`${MNT}/${kind}-host-${i}/app.pid`, "utf8").trim());
        if (pid) {
          process.kill(pid);
          pids.push(pid);
        }
      } catch {}
    }
  }
  await Promise.all(hosts.map((h) => h.close()));
  await trail.close?.();
  // the servers work in the tmpfs: it can be unmounted once they are gone (not when they are told to go)
  const t0 = Date.now();
  while (pids.some((p) => existsSync(`/proc/${p}/cwd`) && readlinkOr(`/proc/${p}/cwd`).startsWith(MNT))) {
    if (Date.now() - t0 > 10_000) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    sh("umount", [MNT]);
  } catch {
    sh("umount", ["-l", MNT]); // still busy: detach it, the kernel frees it when the last user goes
  }
  rmSync(work, { recursive: true, force: true });
  sh("bash", [join(REPO, "scripts/testbed/sshd.sh"), "stop", ...PORTS.map(String)]);
}

function readlinkOr(path) {
  try {
    return readlinkSync(path);
  } catch {
    return "";
  }
}

function report() {
  const ms = (x) => (x === undefined ? "     —" : `${x.toFixed(0).padStart(6)}`);
  console.log(
    `release: ${mb} MB gzipped, 2,002 files; ${ROUNDS} interleaved rounds, medians; hosts = sshd on 127.0.0.1, dirs on tmpfs`,
  );
  console.log(
    `login user ${USER}: one more SSH session (ssh host true, ControlMaster) costs ${sessionMs.toFixed(0)} ms before the load`,
  );
  console.log(
    "wall ms (controller CPU ms)         atomkit CLI          in-process           bash   ratio  CPU ratio",
  );
  for (const [k, [name]] of cases.entries()) {
    const m = (tool, f) => (results[k][tool]?.length ? median(results[k][tool].map((x) => x[f])) : undefined);
    const [a, ac, i, ic, b, bc] = [m("atomkit", "wall"), m("atomkit", "cpu"), m("in-process", "wall")].concat(
      [m("in-process", "cpu"), m("bash", "wall"), m("bash", "cpu")],
    );
    const target = TARGETS[name];
    const verdict = target ? ` (≤ ${target.toFixed(2)}× ${a / b <= target ? "OK" : "OVER"})` : "";
    const cpuVerdict = name.includes("8 hosts")
      ? ` (≤ ${CPU_TARGET}× ${ac / bc <= CPU_TARGET ? "OK" : "OVER"})`
      : "";
    console.log(
      `${name.padEnd(35)} ${ms(a)} (${ms(ac)})  ${ms(i)} (${ms(ic)})  ${ms(b)} (${ms(bc)})  ${(a / b).toFixed(2)}×${verdict}  ${(ac / bc).toFixed(2)}×${cpuVerdict}`,
    );
  }
  console.log(
    `physical floor, 8 hosts at once: cat release | ssh host 'cat >/dev/null' ${median(floor.stream).toFixed(0)} ms · gzip -dc | tar -x ${median(floor.extract).toFixed(0)} ms`,
  );
  console.log("where atomkit's time went (ms, median over hosts and rounds; n = how many):");
  for (const [name, steps] of Object.entries(where)) {
    const parts = Object.entries(steps).map(([s, xs]) =>
      s.endsWith("retries")
        ? `${s} ${xs.length}`
        : `${s} ${median(xs).toFixed(0)}${xs.length > ROUNDS ? "" : ` (n=${xs.length})`}`,
    );
    console.log(`  ${name}: ${parts.join(" · ")}`);
  }
}

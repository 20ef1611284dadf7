// Upload throughput and exec latency of sshHost against plain OpenSSH, measured in the same run on the
// testbed sshd (scripts/testbed/sshd.sh). Big files live on a tmpfs mounted here and unmounted after.
//   node bench/ssh.bench.mjs            (needs root for mount; MB=200 ROUNDS=3 EXECS=200 EXEC_ROUNDS=2)
import { spawn, spawnSync } from "node:child_process";
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sshHost } from "../dist/index.js";

const MB = Number(process.env.MB ?? 200);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const EXECS = Number(process.env.EXECS ?? 200);
const EXEC_ROUNDS = Number(process.env.EXEC_ROUNDS ?? 2);

const env = readEnv(`${process.env.ATOMKIT_TESTBED_DIR ?? "/tmp/atomkit-testbed"}/sshd.env`);
const host = env.ATOMKIT_SSH_HOST ?? "127.0.0.1";
const port = Number(env.ATOMKIT_SSH_PORT ?? 2222);
const user = env.ATOMKIT_SSH_USER ?? "root";
const key = env.ATOMKIT_SSH_KEY;
const knownHosts = env.ATOMKIT_SSH_KNOWN_HOSTS;
if (!key || !existsSync(key)) {
  console.error("no testbed sshd: run `bash scripts/testbed/sshd.sh start` first");
  process.exit(1);
}
const sshArgs = [
  "-p",
  String(port),
  "-i",
  key,
  "-o",
  `UserKnownHostsFile=${knownHosts}`,
  "-o",
  "StrictHostKeyChecking=yes",
  "-o",
  "BatchMode=yes",
  `${user}@${host}`,
];

const dir = mkdtempSync(join(tmpdir(), "atomkit-ssh-bench-"));
const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${MB * 3 + 64}m`, "tmpfs", dir]).status === 0;
if (!mounted) console.warn(`(could not mount a tmpfs on ${dir}: using the disk, figures will be noisier)`);

const ssh = sshHost({ host, port, username: user, privateKeyPath: key, knownHosts });
try {
  const src = join(dir, "src.bin");
  await makeRandomFile(src, MB * 1024 * 1024);
  await ssh.ready();

  // --- upload: interleaved rounds, medians ---
  const ours = [];
  const theirs = [];
  for (let r = 0; r < ROUNDS; r++) {
    let t = performance.now();
    const res = await ssh.upload(src, join(dir, `via-atomkit-${r}`));
    ours.push(MB / ((performance.now() - t) / 1000));
    if (res.bytes !== MB * 1024 * 1024) throw new Error("short upload");
    rmSync(join(dir, `via-atomkit-${r}`));

    t = performance.now();
    await run("ssh", [...sshArgs, `cat > ${join(dir, `via-ssh-${r}`)}`], src);
    theirs.push(MB / ((performance.now() - t) / 1000));
    rmSync(join(dir, `via-ssh-${r}`));
  }
  const up = median(ours);
  const base = median(theirs);
  console.log(
    `upload ${MB} MB (tmpfs → sshd on ${host}:${port} → tmpfs), ${ROUNDS} interleaved rounds, medians:`,
  );
  console.log(
    `  sshHost.upload (SFTP, pipelined, sha256):  ${up.toFixed(1)} MB/s   rounds: ${ours.map((x) => x.toFixed(0)).join(", ")}`,
  );
  console.log(
    `  ssh host 'cat > f' < file (baseline):     ${base.toFixed(1)} MB/s   rounds: ${theirs.map((x) => x.toFixed(0)).join(", ")}`,
  );
  console.log(`  ratio: ${((up / base) * 100).toFixed(0)}% of the baseline (target ≥ 80%)`);

  // --- exec: N small commands on one connection vs N ssh invocations ---
  const seq = [];
  const par = [];
  const cli = [];
  for (let r = 0; r < EXEC_ROUNDS; r++) {
    let t = performance.now();
    for (let i = 0; i < EXECS; i++) await ssh.exec(["true"]);
    seq.push(performance.now() - t);

    t = performance.now();
    await Promise.all(Array.from({ length: EXECS }, () => ssh.exec(["true"])));
    par.push(performance.now() - t);

    t = performance.now();
    for (let i = 0; i < EXECS; i++) await run("ssh", [...sshArgs, "true"]);
    cli.push(performance.now() - t);
  }
  const s = median(seq);
  const p = median(par);
  const c = median(cli);
  console.log(`${EXECS} × exec \`true\`, ${EXEC_ROUNDS} interleaved rounds, medians:`);
  console.log(
    `  sshHost, one connection, one after another: ${(s / 1000).toFixed(2)} s  (${(s / EXECS).toFixed(1)} ms each)`,
  );
  console.log(
    `  sshHost, one connection, all at once (8 channels): ${(p / 1000).toFixed(2)} s  (${(p / EXECS).toFixed(1)} ms each)`,
  );
  console.log(
    `  ${EXECS} separate \`ssh host true\` (baseline): ${(c / 1000).toFixed(2)} s  (${(c / EXECS).toFixed(1)} ms each)`,
  );
  console.log(`  speed-up: ${(c / s).toFixed(1)}× sequential, ${(c / p).toFixed(1)}× concurrent`);
  console.log("  (each remote command also pays the login shell's startup on the server, in both columns)");
} finally {
  await ssh.close();
  if (mounted) spawnSync("umount", [dir]);
  rmSync(dir, { recursive: true, force: true });
}

// --- helpers ---

function run(cmd, args, stdinFile) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [stdinFile ? "pipe" : "ignore", "ignore", "inherit"] });
    if (stdinFile) createReadStream(stdinFile).pipe(child.stdin);
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}`))));
  });
}

async function makeRandomFile(path, bytes) {
  const { randomFillSync } = await import("node:crypto");
  const fh = await open(path, "w");
  const chunk = Buffer.alloc(4 * 1024 * 1024);
  for (let done = 0; done < bytes; done += chunk.length) {
    randomFillSync(chunk);
    await fh.write(chunk, 0, Math.min(chunk.length, bytes - done));
  }
  await fh.close();
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function readEnv(path) {
  const out = {};
  if (existsSync(path)) {
    for (const line of readFileSync(path, "utf8").split("\n")) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (m) out[m[1]] = m[2].replace(/^"(.*)"$/, "$1");
    }
  }
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith("ATOMKIT_") && v) out[k] = v;
  return out;
}

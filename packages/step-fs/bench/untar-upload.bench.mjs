// Benchmark: fs.untar of a ~20 MB / 2,000-file release and fs.upload of a 200 MB file on the local
// host, against `tar -xzf` and `cp` measured in the same run (medians of interleaved rounds), plus the
// peak RSS of the upload measured in a child process (must stay under 100 MB); then fs.untar over SSH
// to 1 and 8 hosts against bash (bench/untar-ssh.mjs).
//
//   pnpm --filter @atomkit/step-fs bench          (needs a build: pnpm exec tsup; step-ssh's too)
//   SECTIONS=ssh pnpm --filter @atomkit/step-fs bench     (only the SSH part; also: local, upload)
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { atom, localHost, run } from "@atomkit/core";
import { untar } from "../dist/index.js";
import { benchSsh } from "./untar-ssh.mjs";

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const UPLOAD_ROUNDS = Number(process.env.UPLOAD_ROUNDS ?? 3);
const FILES = 2000;
const UPLOAD_MB = 200;
const RSS_LIMIT_MB = 100;
const here = dirname(fileURLToPath(import.meta.url));
const SECTIONS = (process.env.SECTIONS ?? "local,upload,ssh").split(",");

const base = await mkdtemp(join(tmpdir(), "atomkit-bench-"));
let mounted = false;
if (process.getuid?.() === 0) {
  mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=1200m", "tmpfs", base]).status === 0;
}
console.log(
  `# fs bench: work dir ${base} (${mounted ? "tmpfs" : "no tmpfs: plain /tmp"}), node ${process.version}`,
);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const time = async (fn) => {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
};
const fmt = (ms) => `${ms.toFixed(0).padStart(6)} ms`;

try {
  // --- inputs ---
  const src = join(base, "src", "release");
  for (let d = 0; d < 40; d++) await mkdir(join(src, `dir${d}`), { recursive: true });
  let bytes = 0;
  for (let i = 0; i < FILES; i++) {
    // ~10 KB per file: two thirds random (incompressible, like images or jars), a third text
    const size = 4_000 + ((i * 7919) % 12_000);
    const body =
      i % 3 === 2
        ? Buffer.from(
            `line ${i} of a text file that compresses well\n`.repeat(Math.ceil(size / 46)),
          ).subarray(0, size)
        : randomBytes(size);
    bytes += body.length;
    await writeFile(join(src, `dir${i % 40}`, `file-${i}.dat`), body);
  }
  const archive = join(base, "release.tar.gz");
  execFileSync("tar", ["-czf", archive, "-C", src, "."]);
  await rm(join(base, "src"), { recursive: true });
  const archiveMb = (await stat(archive)).size / 1e6;
  console.log(
    `# release: ${FILES} files, ${(bytes / 1e6).toFixed(1)} MB unpacked, ${archiveMb.toFixed(1)} MB .tar.gz`,
  );

  if (SECTIONS.includes("ssh")) await benchSsh({ base, archive, rounds: ROUNDS, median, time, fmt });
  if (SECTIONS.includes("local")) await benchLocal(archive);
  if (SECTIONS.includes("upload")) await benchUpload();
} finally {
  if (mounted) {
    spawnSync("umount", [base]);
  }
  await rm(base, { recursive: true, force: true });
  if (existsSync(base)) console.error(`could not remove ${base}`);
}

async function benchLocal(original) {
  const fresh = async (tag) => {
    const copy = join(base, `${tag}.tar.gz`);
    await copyFile(original, copy);
    return copy;
  };
  const host = localHost({ stateDir: join(base, "state") });
  const releases = join(base, "releases");
  await mkdir(releases);
  const ours = [];
  const oursRemote = [];
  const baseline = [];
  for (let r = 0; r < ROUNDS; r++) {
    const runs = [
      async () => {
        const path = join(releases, `ours-${r}`);
        // a fresh copy each time: a new file identity, inspected once as by a new deploy process
        const archive = await fresh(`ours-${r}`);
        ours.push(
          await time(async () => {
            const res = await run(atom("b", { steps: [untar({ archive, path })] }), { host, lock: false });
            if (res.status !== "committed") throw res.error;
          }),
        );
        await rm(path, { recursive: true });
      },
      async () => {
        const path = join(releases, `remote-${r}`);
        const archive = await fresh(`remote-${r}`);
        oursRemote.push(
          await time(async () => {
            // what a remote host does: the inspected bytes streamed into the host's tar
            const step = untar({ archive, path, extractWith: "tar" });
            const res = await run(atom("b", { steps: [step] }), { host, lock: false });
            if (res.status !== "committed") throw res.error;
          }),
        );
        await rm(path, { recursive: true });
      },
      async () => {
        const path = join(releases, `tar-${r}`);
        await mkdir(path);
        baseline.push(await time(async () => execFileSync("tar", ["-xzf", original, "-C", path])));
        await rm(path, { recursive: true });
      },
    ];
    // rotate the order each round so no contender always runs with a warm cache
    for (let i = 0; i < runs.length; i++) await runs[(i + r) % runs.length]();
  }
  console.log(`\n## untar (${ROUNDS} interleaved rounds, medians)`);
  console.log(`fs.untar, default (inspect + node-tar + rename)       ${fmt(median(ours))}`);
  console.log(`fs.untar, extractWith "tar" (inspect + stream to tar -xz) ${fmt(median(oursRemote))}`);
  console.log(`baseline: tar -xzf                                    ${fmt(median(baseline))}`);
  console.log(
    `ratio to tar -xzf: default ${(median(ours) / median(baseline)).toFixed(2)}x, extractWith "tar" ${(median(oursRemote) / median(baseline)).toFixed(2)}x`,
  );
}

async function benchUpload() {
  const big = join(base, "big.bin");
  await new Promise((resolve, reject) => {
    const out = createWriteStream(big);
    out.on("error", reject);
    out.on("finish", resolve);
    let left = UPLOAD_MB;
    const write = () => {
      while (left > 0) {
        left--;
        if (!out.write(randomBytes(1024 * 1024))) return out.once("drain", write);
      }
      out.end();
    };
    write();
  });
  const up = [];
  const cp = [];
  const rss = [];
  let idleRss = 0;
  for (let r = 0; r < UPLOAD_ROUNDS; r++) {
    const runs = [
      () => {
        const dest = join(base, `uploaded-${r}.bin`);
        const child = spawnSync(
          process.execPath,
          [join(here, "upload-child.mjs"), big, dest, join(base, "state")],
          {
            encoding: "utf8",
          },
        );
        if (child.status !== 0) throw new Error(`upload child failed: ${child.stderr}`);
        const m = JSON.parse(child.stdout.trim().split("\n").at(-1));
        up.push(m.ms);
        rss.push(m.maxRssMb);
        idleRss = m.idleRssMb;
        return rm(dest);
      },
      async () => {
        const dest = join(base, `cp-${r}.bin`);
        cp.push(await time(async () => execFileSync("cp", [big, dest])));
        await rm(dest);
      },
    ];
    for (let i = 0; i < runs.length; i++) await runs[(i + r) % runs.length]();
  }
  const peak = Math.max(...rss);
  console.log(`\n## upload of ${UPLOAD_MB} MB (${UPLOAD_ROUNDS} interleaved rounds, medians)`);
  console.log(`fs.upload (stream + sha256 + rename, then observe hashes it) ${fmt(median(up))}`);
  console.log(`baseline: cp                                                ${fmt(median(cp))}`);
  console.log(`ratio fs.upload / cp: ${(median(up) / median(cp)).toFixed(2)}x`);
  console.log(
    `peak RSS of the upload child: ${peak.toFixed(1)} MB (same child before uploading: ${idleRss.toFixed(1)} MB); limit ${RSS_LIMIT_MB} MB: ${peak < RSS_LIMIT_MB ? "PASS" : "FAIL"}`,
  );
  if (peak >= RSS_LIMIT_MB) process.exitCode = 1;
}

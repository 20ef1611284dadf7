// fs.untar over SSH on the testbed's sshd (ports from /tmp/atomkit-testbed/sshd.env), for 1 and 8 hosts
// (8 connections spread over the testbed's ports), interleaved in the same run with:
//   - the previous way: the archive inspected once per host, uploaded by SFTP, then `tar -x -f` (what
//     ATOMKIT_UNTAR_HOLD_MAX=0 and one copy of the archive per host reproduce);
//   - bash: `ssh host 'mkdir d && tar -xzf - -C d' < archive`, one ssh per host over a ControlMaster
//     connection opened beforehand (one handshake per host, like our connections);
//   - the floor: `ssh host 'cat >/dev/null' < archive`.
// Plus the transport alone for one host: exec's stdin vs an SFTP upload of the same bytes.
import { spawn, spawnSync } from "node:child_process";
import { copyFile, mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { atom, run } from "@atomkit/core";
import { testbedEnv } from "@atomkit/testkit";
// @atomkit/step-ssh devDepends on this package: imported by path (its build), never a dependency
import { sshHost } from "../../step-ssh/dist/index.js";
import { untar } from "../dist/index.js";

export async function benchSsh({ base, archive, rounds, median, time, fmt }) {
  const env = testbedEnv("sshd.env");
  const ports = (env.ATOMKIT_SSH_PORTS ?? env.ATOMKIT_SSH_PORT ?? "")
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  if (!ports.length) {
    console.log("\n## untar over SSH: skipped (no testbed sshd: scripts/testbed/sshd.sh start)");
    return;
  }
  const user = env.ATOMKIT_SSH_USER ?? "root";
  const address = env.ATOMKIT_SSH_HOST ?? "127.0.0.1";
  const FLEET = 8;
  const portOf = (i) => ports[i % ports.length];
  const hosts = Array.from({ length: FLEET }, (_, i) =>
    sshHost({
      host: address,
      port: portOf(i),
      username: user,
      privateKeyPath: env.ATOMKIT_SSH_KEY,
      knownHosts: env.ATOMKIT_SSH_KNOWN_HOSTS,
      stateDir: join(base, "ssh-state"),
    }),
  );
  const sshArgs = (i) => [
    "-p",
    String(portOf(i)),
    "-i",
    env.ATOMKIT_SSH_KEY,
    "-o",
    `UserKnownHostsFile=${env.ATOMKIT_SSH_KNOWN_HOSTS}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    `ControlPath=${join(base, `cm-${i}`)}`,
    `${user}@${address}`,
  ];
  const ssh = (i, command, inputFile) =>
    new Promise((resolve, reject) => {
      const child = spawn("ssh", [...sshArgs(i), command], { stdio: ["pipe", "ignore", "inherit"] });
      child.on("error", reject);
      child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`ssh exited ${code}`))));
      if (inputFile) readFile(inputFile).then((b) => child.stdin.end(b), reject);
      else child.stdin.end();
    });
  const out = join(base, "ssh-out");
  await mkdir(out, { recursive: true });
  await mkdir(join(base, "ssh-state"), { recursive: true });
  try {
    await Promise.all(hosts.map((h) => h.ready()));
    for (let i = 0; i < FLEET; i++) {
      // the master connection: opened now, outside the timings, like our connections
      spawnSync("ssh", ["-o", "ControlMaster=yes", "-o", "ControlPersist=600", ...sshArgs(i), "true"]);
    }
    const results = {};
    const add = (name, ms) => {
      results[name] ??= [];
      results[name].push(ms);
    };
    for (let r = 0; r < rounds; r++) {
      const runs = [];
      for (const n of [1, FLEET]) {
        const dirs = Array.from({ length: n }, (_, i) => join(out, `h${i}`));
        const clean = () => rm(out, { recursive: true, force: true }).then(() => mkdir(out));
        runs.push(async () => {
          // a fresh copy: a new file identity, so it is inspected once, as by a new deploy process
          const copy = join(base, `stream-${r}-${n}.tar.gz`);
          await copyFile(archive, copy);
          add(`stream ${n}`, await time(() => untarAll(hosts, dirs, () => copy)));
          await rm(copy);
          await clean();
        });
        runs.push(async () => {
          const copies = dirs.map((_, i) => join(base, `old-${r}-${n}-${i}.tar.gz`));
          for (const c of copies) await copyFile(archive, c);
          process.env.ATOMKIT_UNTAR_HOLD_MAX = "0";
          try {
            add(`old ${n}`, await time(() => untarAll(hosts, dirs, (i) => copies[i])));
          } finally {
            delete process.env.ATOMKIT_UNTAR_HOLD_MAX;
          }
          for (const c of copies) await rm(c);
          await clean();
        });
        runs.push(async () => {
          add(
            `bash ${n}`,
            await time(() =>
              Promise.all(dirs.map((d, i) => ssh(i, `mkdir ${d} && tar -xzf - -C ${d}`, archive))),
            ),
          );
          await clean();
        });
        runs.push(async () => {
          add(
            `floor ${n}`,
            await time(() => Promise.all(dirs.map((_, i) => ssh(i, "cat >/dev/null", archive)))),
          );
        });
      }
      runs.push(async () => {
        const bytes = await readFile(archive);
        add("exec stdin", await time(() => hosts[0].exec(["sh", "-c", "cat >/dev/null"], { input: bytes })));
      });
      runs.push(async () => {
        const dest = join(out, "up.bin");
        add("sftp upload", await time(() => hosts[0].upload(archive, dest, { mode: 0o600 })));
        await rm(dest);
      });
      for (let i = 0; i < runs.length; i++) await runs[(i + r) % runs.length]();
    }
    const m = (k) => median(results[k]);
    console.log(`\n## untar over SSH (${ports.length} sshd, ${rounds} interleaved rounds, medians)`);
    for (const n of [1, FLEET]) {
      console.log(`${n} host(s):`);
      console.log(`  fs.untar, inspect once + stream into tar        ${fmt(m(`stream ${n}`))}`);
      console.log(`  previous: inspect per host + SFTP + tar -f      ${fmt(m(`old ${n}`))}`);
      console.log(`  bash: ssh host 'tar -xzf - -C d' < archive       ${fmt(m(`bash ${n}`))}`);
      console.log(`  floor: ssh host 'cat >/dev/null' < archive       ${fmt(m(`floor ${n}`))}`);
      console.log(
        `  ratio to bash: stream ${(m(`stream ${n}`) / m(`bash ${n}`)).toFixed(2)}x, previous ${(m(`old ${n}`) / m(`bash ${n}`)).toFixed(2)}x`,
      );
    }
    console.log(
      `transport alone, 1 host: exec stdin ${fmt(m("exec stdin"))}, SFTP upload ${fmt(m("sftp upload"))}`,
    );
  } finally {
    for (let i = 0; i < FLEET; i++) spawnSync("ssh", ["-O", "exit", ...sshArgs(i)], { stdio: "ignore" });
    await Promise.all(hosts.map((h) => h.close()));
  }
}

async function untarAll(hosts, dirs, archiveFor) {
  const results = await Promise.all(
    dirs.map((path, i) =>
      run(atom("b", { steps: [untar({ archive: archiveFor(i), path })] }), { host: hosts[i], lock: false }),
    ),
  );
  for (const r of results) if (r.status !== "committed") throw r.error;
}

// The release bench's lower bound: plain bash, one script per host, in parallel. Every ssh of one
// command shares a ControlMaster (a fresh ControlPath per command), so bash pays one handshake per
// host per command, as one `atomkit` process does. Its controller CPU: each script's own and its
// children's (bash `times` on exit), plus the ControlMaster processes' (read from /proc before they
// are closed: they run detached, no `times` counts them). Also the physical floor of the same bytes.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { cpuOfTimes } from "./release-cli.mjs";

const TICK_MS = 1000 / Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim() || 100);

export function bashSide(o) {
  let command = 0;
  const sshArgs = (i, cm) => [
    ...["-p", String(o.sshPorts[i]), "-i", o.key, "-o", `UserKnownHostsFile=${o.knownHosts}`],
    ...["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"],
    ...(cm ? ["-o", "ControlMaster=auto", "-o", `ControlPath=${cm}/%C`, "-o", "ControlPersist=60"] : []),
    `${o.user ?? "root"}@127.0.0.1`,
  ];
  const sshLine = (i, cm) => `ssh ${sshArgs(i, cm).join(" ")}`;
  // wait until the old process is gone: an exited process this machine's init does not reap stays a
  // zombie, which kill -0 still finds; and a zombie leader's other threads may still hold the port
  const waitGone = `while kill -0 \\$p 2>/dev/null && { ! grep -q '^State:.*Z' /proc/\\$p/status 2>/dev/null || [ \\$(ls /proc/\\$p/task 2>/dev/null | wc -l) -gt 1 ]; }; do sleep 0.02; done`;
  // detached, its own session; the shell writes its pid and becomes the server
  const startCmd = (b, port) =>
    `cd ${b}/current && setsid -f sh -c 'echo \\$\\$ > ${b}/app.pid; exec ${process.execPath} server.cjs ${port} ${b}/drain' > ${b}/app.log 2>&1 < /dev/null`;
  const health = (port) => `
    ok=0; for _ in $(seq 1 ${Math.round(o.healthTimeoutMs / 100)}); do
      if curl -fsS -o /dev/null http://127.0.0.1:${port}/health 2>/dev/null; then ok=1; break; fi; sleep 0.1; done`;

  function deployScript(i, version, tarball, cm) {
    const b = o.hostDir(i);
    const port = o.appPort(i);
    const ssh = sshLine(i, cm);
    return `
set -u
trap 'times >&2' EXIT
R=${b}/releases/${version}
${ssh} "mkdir -p $R && tar -xzf - -C $R" < ${tarball} || exit 1
OLD=$(${ssh} "readlink ${b}/current 2>/dev/null || true")
${ssh} "if [ -f ${b}/app.pid ]; then p=\\$(cat ${b}/app.pid); kill \\$p 2>/dev/null; ${waitGone}; fi
  ln -s $R ${b}/current.tmp && mv -T ${b}/current.tmp ${b}/current
  ${startCmd(b, port)}" || exit 1
${health(port)}
if [ $ok = 0 ]; then
  # scripted restore: stop the new process, point current back, start the old one, wait for it
  ${ssh} "p=\\$(cat ${b}/app.pid); kill \\$p; ${waitGone}
    ln -s $OLD ${b}/current.tmp && mv -T ${b}/current.tmp ${b}/current && rm -rf $R
    ${startCmd(b, port)}"
  ${health(port)}
  [ $ok = 1 ] && exit 3 || exit 4
fi
exit 0`;
  }

  // the previous release (release names sort by time), current back to it, restart, health; the
  // release rolled back is removed, as atomkit's undo of the unpack does
  function rollbackScript(i, cm) {
    const b = o.hostDir(i);
    const port = o.appPort(i);
    return `
set -u
trap 'times >&2' EXIT
${sshLine(i, cm)} "cur=\\$(basename \\$(readlink ${b}/current))
  prev=\\$(ls -1 ${b}/releases | sort | grep -B1 -Fx \\"\\$cur\\" | head -n1)
  [ -n \\"\\$prev\\" ] && [ \\"\\$prev\\" != \\"\\$cur\\" ] || exit 1
  p=\\$(cat ${b}/app.pid); kill \\$p 2>/dev/null; ${waitGone}
  ln -s ${b}/releases/\\$prev ${b}/current.tmp && mv -T ${b}/current.tmp ${b}/current && rm -rf ${b}/releases/\\$cur
  ${startCmd(b, port)}" || exit 1
${health(port)}
[ $ok = 1 ] && exit 0 || exit 4`;
  }

  function runScript(script) {
    return new Promise((resolvePromise, reject) => {
      const child = spawn("bash", ["-c", script], { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr.on("data", (d) => {
        err += d;
      });
      const timer = setTimeout(() => child.kill("SIGKILL"), 120_000); // a hung baseline must not hang the bench
      child.on("close", (code) => {
        clearTimeout(timer);
        const lines = err.trimEnd().split("\n");
        if (lines.length > 2) process.stderr.write(`${lines.slice(0, -2).join("\n")}\n`);
        // the script's own CPU and its children's
        resolvePromise({ code, cpu: cpuOfTimes(lines.at(-2)) + cpuOfTimes(lines.at(-1)) });
      });
      child.on("error", reject);
    });
  }

  /** CPU ms of each host's ControlMaster, then closed (after the timing: closing is not the deploy). */
  function closeMasters(n, cm) {
    let cpu = 0;
    for (let i = 0; i < n; i++) {
      const args = sshArgs(i, cm);
      let pid;
      try {
        const said = execFileSync("ssh", ["-O", "check", ...args], { stdio: ["ignore", "pipe", "pipe"] });
        pid = /pid=(\d+)/.exec(said.toString())?.[1];
      } catch (e) {
        pid = /pid=(\d+)/.exec(String(e.stderr ?? ""))?.[1];
      }
      if (pid) {
        const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
        cpu += (Number(f[11]) + Number(f[12])) * TICK_MS; // utime, stime (fields 14, 15)
      }
      try {
        execFileSync("ssh", ["-O", "exit", ...args], { stdio: "ignore" });
      } catch {}
    }
    rmSync(cm, { recursive: true, force: true });
    return cpu;
  }

  async function timedCommand(n, scriptOf, want) {
    const cm = join(o.work, `cm-${++command}`);
    mkdirSync(cm);
    const t0 = performance.now();
    const rs = await Promise.all(Array.from({ length: n }, (_, i) => runScript(scriptOf(i, cm))));
    const wall = performance.now() - t0;
    const cpu = rs.reduce((a, r) => a + r.cpu, 0) + closeMasters(n, cm);
    if (rs.some((r) => r.code !== want))
      throw new Error(`bash: exit codes ${rs.map((r) => r.code).join(",")}, expected ${want}`);
    return { wall, cpu };
  }

  return {
    deploy: (n, version, tarball, want) =>
      timedCommand(n, (i, cm) => deployScript(i, version, tarball, cm), want),
    rollback: (n) => timedCommand(n, (i, cm) => rollbackScript(i, cm), 0),
    /**
     * What one more session costs on an open connection (`ssh host true` through a ControlMaster), the
     * median of 10: sshd starts the login shell, whose startup files run on every command.
     */
    async sessionMs() {
      const cm = join(o.work, `cm-${++command}`);
      mkdirSync(cm);
      await sh(`ssh ${sshArgs(0, cm).join(" ")} true`);
      const times = [];
      for (let k = 0; k < 10; k++) {
        const t0 = performance.now();
        await sh(`ssh ${sshArgs(0, cm).join(" ")} true`);
        times.push(performance.now() - t0);
      }
      closeMasters(1, cm);
      return times.sort((a, b) => a - b)[5];
    },
    /** `cat release | ssh host 'cat >/dev/null'`, every host at once: the bytes over ssh, nothing else. */
    async floorStream(n, tarball) {
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: n }, (_, i) => sh(`ssh ${sshArgs(i).join(" ")} 'cat >/dev/null' < ${tarball}`)),
      );
      return performance.now() - t0;
    },
    /** `gzip -dc | tar -x` of the release, n at once (the hosts are this machine, their dirs on tmpfs). */
    async floorExtract(n, tarball) {
      const dirs = Array.from({ length: n }, (_, i) => join(o.mnt, `floor-${i}`));
      for (const d of dirs) mkdirSync(d, { recursive: true });
      const t0 = performance.now();
      await Promise.all(dirs.map((d) => sh(`gzip -dc < ${tarball} | tar -x -C ${d}`)));
      const ms = performance.now() - t0;
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
      return ms;
    },
  };
}

function sh(script) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn("bash", ["-c", `set -o pipefail; ${script}`], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    child.on("close", (code) =>
      code === 0 ? resolvePromise() : reject(new Error(`${script}: exit ${code}`)),
    );
    child.on("error", reject);
  });
}

// What process.stop observes: finds the process (by pid file or command-line match) and records how to
// start it again, from its launch record when Atomkit started it, else from /proc and the step's `env`
// and `restart`. What cannot be known for a faithful restart becomes `problem`: apply refuses then,
// before stopping anything.
import type { Host, StepContext } from "@atomkit/core";
import { fail } from "@atomkit/core/kit";
import { probeOnce } from "./_health";
import { realDir } from "./_launch";
import { type ProcStat, readBootId, readPidFile, readStat, scanProcesses } from "./_proc";
import { readRecord } from "./_record";
import { type Launch, launchDirOf, type Running, readProcLaunch } from "./_state";
import { showArgv } from "./_text";
import type { StopProcessParams, StopProcessState } from "./stop";

/** Names whose values `env: "keep"` refuses to write to the trail. */
const SECRET_NAME_RE =
  /SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|PRIVATE_?KEY|API_?KEY|ACCESS_?KEY/i;

/** The process the params name, or null when none runs. Several unrelated matches are an error. */
async function locate(ctx: StepContext, p: StopProcessParams): Promise<ProcStat | null> {
  const { host } = ctx;
  if (p.pidFile) {
    const found = await readPidFile(host, p.pidFile);
    if (found.status === "recycled") {
      ctx.log(
        `pid file ${p.pidFile} names pid ${found.pid}, which started after the file was written: a reused pid, not touched`,
      );
    }
    return found.status === "running" ? found.stat : null;
  }
  const matches = await scanProcesses(host, new RegExp(p.match!), host.local ? [process.pid] : []);
  const pids = new Set(matches.map((m) => m.pid));
  // a server and its workers share a command line: the one whose parent is not a match is the target
  const roots = matches.filter((m) => !pids.has(m.ppid));
  if (roots.length === 0) return null;
  if (roots.length > 1) {
    throw fail(`${roots.length} unrelated processes match /${p.match}/`, {
      expected: "exactly one process (or one parent of all matches)",
      found: roots
        .slice(0, 5)
        .map((m) => `pid ${m.pid}: ${showArgv(m.argv, 80)}`)
        .join("; "),
      hint: "make match more specific (anchor it, add an argument), or use pidFile",
    });
  }
  return readStat(host, roots[0]!.pid);
}

/** Observe of process.stop: whether the process runs, its launch, and (with `health`) whether it answers. */
export async function snapshot(ctx: StepContext, p: StopProcessParams): Promise<StopProcessState> {
  const { host } = ctx;
  const stat = await locate(ctx, p);
  if (!stat) return { running: false };
  const { pid } = stat;
  const ev = { pid, startTime: stat.startTime, bootId: await readBootId(host) };
  let state: Running;
  const recorded = p.pidFile ? await readRecord(host, p.pidFile, ev) : null;
  if (recorded) {
    // started by process.start (or restarted by this kind): its launch record is the truth
    state = { running: true, ...ev, launch: recorded.launch, recorded: true, output: recorded.output };
  } else {
    let proc: Awaited<ReturnType<typeof readProcLaunch>>;
    try {
      proc = await readProcLaunch(host, pid);
    } catch (error) {
      throw fail(`cannot read /proc/${pid} to record how to restart it`, {
        expected: "its command line, working directory and environment",
        found: (error as Error)?.message?.split("\n")[0],
        hint: "run the deploy as the process's user or as root",
        cause: error,
      });
    }
    // it exited while we looked: it is stopped
    if (!proc || !(await readStat(host, pid))) return { running: false };
    if (proc.launch.argv.length === 0) {
      throw fail(`pid ${pid} has an empty command line`, {
        expected: "the argv of a user process",
        found: "nothing (a kernel thread, or a Host that reads procfs files as empty)",
        hint: "point pidFile/match at the service itself",
      });
    }
    state = await foreignLaunch(host, p, ev, proc);
  }
  if (p.health && !("logLine" in p.health)) {
    return { ...state, healthy: (await probeOnce(p.health, { host, cwd: state.launch.dir })).ok };
  }
  return state;
}

/** The launch of a process Atomkit did not start, from /proc and the step's `env` and `restart`. */
async function foreignLaunch(
  host: Host,
  p: StopProcessParams,
  ev: { pid: number; startTime: number; bootId: string },
  proc: NonNullable<Awaited<ReturnType<typeof readProcLaunch>>>,
): Promise<Running> {
  const problems: string[] = [];
  const launch: Launch = { ...proc.launch, ...(p.restart?.command ? { argv: p.restart.command } : {}) };
  if (p.restart?.cwd) {
    launch.cwd = p.restart.cwd;
    launch.dir = (await realDir(host, p.restart.cwd)) ?? p.restart.cwd;
  } else {
    const where = await launchDirOf(host, proc.launch.dir, proc.environ);
    if ("problem" in where)
      problems.push(`${where.problem}; give restart: { cwd } (where it is started from)`);
    else Object.assign(launch, where);
  }
  const secret = new Set(p.secretEnvNames);
  launch.secretEnv = p.secretEnvNames.filter((n) => n in proc.environ);
  if (p.env === "keep") {
    launch.clearEnv = true;
    const unrecorded: string[] = [];
    for (const name of Object.keys(proc.environ).sort()) {
      if (secret.has(name)) continue;
      if (SECRET_NAME_RE.test(name)) unrecorded.push(name);
      else launch.env[name] = proc.environ[name]!;
    }
    if (unrecorded.length) {
      problems.push(
        `its variables ${unrecorded.join(", ")} look secret, so their values are not recorded; give them in secretEnv (e.g. secretEnv: { ${unrecorded[0]}: process.env.${unrecorded[0]} }) or list the variables to keep in env: [...]`,
      );
    }
  } else if (Array.isArray(p.env)) {
    for (const name of p.env)
      if (!secret.has(name)) launch.env[name] = name in proc.environ ? proc.environ[name]! : null;
  }
  if ((p.env !== "none" || launch.secretEnv.length) && launch.argv[0]!.includes("=")) {
    problems.push(
      `its program ${JSON.stringify(launch.argv[0])} holds "=", which env would read as a variable`,
    );
  }
  return {
    running: true,
    ...ev,
    launch,
    recorded: false,
    output: proc.output,
    ...(problems.length ? { problem: problems.join("; ") } : {}),
  };
}

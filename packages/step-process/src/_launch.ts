import { type Host, HostError } from "@atomkit/core";
import { tempBeside } from "@atomkit/core/kit";

export interface LaunchSpec {
  /** The program and its arguments, already wrapped (env, setpriv) as needed. */
  argv: readonly string[];
  cwd: string;
  stdout: string;
  stderr: string;
  pidFile: string;
}

/**
 * Fixed script text: every path and word arrives as a positional parameter, never pasted into it.
 * The outer shell checks what it can report (cwd, log, pid file), starts the inner one in a new session
 * (`setsid -f`: it outlives this exec, the deploying process and its SSH session), then waits for the
 * pid file. The inner shell redirects its output, writes its own pid ($$) atomically (temp + mv) and
 * execs the program, which keeps that pid and its start time.
 */
const OUTER = `cwd=$1 out=$2 err=$3 pidf=$4 tmpf=$5
shift 5
cd -- "$cwd" || exit 126
dir=$(pwd -P) || exit 126
: >>"$out" || exit 125
: >>"$err" || exit 125
rm -f -- "$pidf" || exit 125
setsid -f sh -c "$INNER" sh "$out" "$err" "$pidf" "$tmpf" "$@" || exit 124
i=0
while [ ! -s "$pidf" ]; do
  i=$((i + 1))
  if [ "$i" -gt 500 ]; then echo "the detached process wrote no pid file within 5 s" >&2; exit 124; fi
  sleep 0.01 2>/dev/null || sleep 1
done
cat -- "$pidf"
printf '%s\n' "$dir"`;

const INNER = `out=$1 err=$2 pidf=$3 tmp=$4
shift 4
exec </dev/null >>"$out" 2>>"$err" || exit 125
echo $$ >"$tmp" && mv -f -- "$tmp" "$pidf" || exit 125
exec "$@"`;

/**
 * Starts `spec.argv` detached and returns its pid (it may already have exited: check it) and the
 * directory it started in, resolved (`pwd -P`: the release behind a `current` symlink).
 */
export async function launch(
  host: Host,
  spec: LaunchSpec,
  signal?: AbortSignal,
): Promise<{ pid: number; dir: string }> {
  const r = await host.exec(
    [
      "sh",
      "-c",
      // the inner script travels as an argument too: one level of quoting less to get wrong
      `INNER=$1; shift; ${OUTER}`,
      "sh",
      INNER,
      spec.cwd,
      spec.stdout,
      spec.stderr,
      spec.pidFile,
      // the kit's temporary name beside the pid file: legal however long the pid file's name is
      tempBeside(spec.pidFile),
      ...spec.argv,
    ],
    { reject: false, ...(signal ? { signal } : {}) },
  );
  const nl = r.stdout.indexOf("\n");
  const pid = Number(r.stdout.slice(0, nl).trim());
  const dir = r.stdout.slice(nl + 1).replace(/\n$/, "");
  if (r.code === 0 && Number.isInteger(pid) && pid > 0 && dir.startsWith("/")) return { pid, dir };
  const stderr = r.stderr.trim().split("\n").slice(-3).join("\n");
  const why: Record<number, [string, string]> = {
    126: [`cannot enter the working directory ${spec.cwd}`, "create it, or fix cwd"],
    125: [
      `cannot write the log ${spec.stdout} or the pid file ${spec.pidFile}`,
      "create their directories and check permissions",
    ],
    124: ["cannot start the process detached", "the host needs `setsid` (util-linux or busybox)"],
  };
  const [message, hint] = why[r.code ?? -1] ?? ["the launcher failed", "see the error output above"];
  throw new HostError("EXIT", message, {
    host: host.name,
    ...(r.code !== null ? { exitCode: r.code } : {}),
    stderr,
    expected: "the process started in a new session, its pid written to the pid file",
    found: stderr || (r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`),
    hint,
  });
}

/** The last lines the process wrote since `offset`, for an error message; masked, short. */
export async function logTail(
  host: Host,
  file: string,
  offset: number,
  mask: (text: string) => string,
): Promise<string> {
  if (file === "/dev/null") return "(output went to /dev/null)";
  try {
    const text = (await host.readFile(file)).subarray(offset).toString("utf8").trimEnd();
    if (!text) return `(nothing in ${file})`;
    const tail = text.split("\n").slice(-8).join("\n");
    return mask(tail.length > 1_500 ? `…${tail.slice(-1_500)}` : tail);
  } catch {
    return `(cannot read ${file})`;
  }
}

/** Size of the log now: output from before this start must not count (logLine, error tails). */
export async function sizeOf(host: Host, file: string): Promise<number> {
  if (file === "/dev/null") return 0;
  return (await host.stat(file).catch(() => null))?.size ?? 0;
}

/** Fails early, with a fix, when a directory the launch needs is missing. */
export async function requireDir(host: Host, dir: string, what: string): Promise<string | undefined> {
  const st = await host.stat(dir);
  if (st?.type === "directory") return undefined;
  return `${what} ${dir} ${st ? "is not a directory" : "does not exist"}`;
}

/**
 * `path` resolved on the host (symlinks followed), or `null` when it is not a directory (one the deploy
 * user can enter, where the host has no `realpath`; otherwise the launch reports that).
 */
export async function realDir(host: Host, path: string): Promise<string | null> {
  if (host.realpath) {
    // one file-system call, not a shell: on an SSH host an exec is a whole session (the costliest part
    // of a stop or start on a busy fleet); whether the deploy user may enter it, the launch finds out
    const dir = await host.realpath(path).catch(() => null);
    return dir?.startsWith("/") && (await host.stat(dir))?.type === "directory" ? dir : null;
  }
  const r = await host.exec(["sh", "-c", 'cd -- "$1" && pwd -P', "sh", path], { reject: false });
  const dir = r.stdout.replace(/\n$/, "");
  return r.code === 0 && dir.startsWith("/") ? dir : null;
}

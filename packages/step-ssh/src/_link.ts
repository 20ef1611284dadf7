import { type Host, HostError, type HostErrorReason } from "@atomkit/core";
import { shellQuote } from "@atomkit/core/kit";

/**
 * Hard-links `from` to `to` with the POSIX `link` utility, for servers without `hardlink@openssh.com`.
 * `link` calls link(2) as is: it fails when anything (a file, a directory, a dangling symlink) is at
 * `to`. `ln` would not do: given a directory at `to`, it links *into* it and succeeds.
 */
export async function linkOverExec(
  host: Pick<Host, "exec" | "name">,
  from: string,
  to: string,
): Promise<void> {
  // BSD `link` takes no options (not even `--`): keep a relative name from reading as one
  const argv = ["link", operand(from), operand(to)];
  const shown = `link ${shellQuote(from)} ${shellQuote(to)}`;
  let r: Awaited<ReturnType<Host["exec"]>>;
  try {
    r = await host.exec(argv, { reject: false, env: { LC_ALL: "C" } });
  } catch (error) {
    if (error instanceof HostError && error.reason === "ENOENT") {
      throw new HostError("OTHER", `cannot create ${to} exclusively on ${host.name}: \`${shown}\` failed`, {
        host: host.name,
        cause: error,
        expected: "the SFTP extension hardlink@openssh.com, or a `link` command on the host",
        found: "neither",
        hint: "use OpenSSH's sftp-server (it has offered hardlink@openssh.com since 5.7) or install coreutils",
      });
    }
    throw error;
  }
  if (r.code === 0) return;
  const stderr = r.stderr.trim();
  throw new HostError(reasonOf(stderr), `writeFile ${to} failed: \`${shown}\`: ${stderr}`, {
    host: host.name,
    stderr: r.stderr,
    ...(r.code !== null ? { exitCode: r.code } : {}),
  });
}

function operand(path: string): string {
  return path.startsWith("-") ? `./${path}` : path;
}

/** link(1)'s message, in the C locale, carries strerror(errno). */
function reasonOf(stderr: string): HostErrorReason {
  if (/File exists/.test(stderr)) return "EEXIST";
  if (/No such file or directory/.test(stderr)) return "ENOENT";
  if (/Not a directory/.test(stderr)) return "ENOTDIR";
  if (/Permission denied|Operation not permitted/.test(stderr)) return "EACCES";
  if (/No space left|quota exceeded/i.test(stderr)) return "ENOSPC";
  return "OTHER";
}

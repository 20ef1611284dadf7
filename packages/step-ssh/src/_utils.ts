import { homedir, userInfo } from "node:os";
import { type FileStat, HostError, type HostErrorReason } from "@atomkit/core";
import { env, shellQuote } from "@atomkit/core/kit";
import type { Attributes, SFTPWrapper } from "ssh2";

// --- SFTP status codes (draft-ietf-secsh-filexfer-02 §7) ---

export const SFTP_NO_SUCH_FILE = 2;
export const SFTP_PERMISSION_DENIED = 3;
/** OpenSSH's sftp-server answers FAILURE for every errno it has no code for (EEXIST, ENOTEMPTY, EISDIR…). */
export const SFTP_FAILURE = 4;
const SFTP_NO_CONNECTION = 6;
const SFTP_CONNECTION_LOST = 7;

export function sftpCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/** The reason an SFTP status maps to without asking the server more; FAILURE needs a follow-up stat. */
export function reasonOfStatus(code: number | undefined): HostErrorReason {
  switch (code) {
    case SFTP_NO_SUCH_FILE:
      return "ENOENT";
    case SFTP_PERMISSION_DENIED:
      return "EACCES";
    case SFTP_NO_CONNECTION:
    case SFTP_CONNECTION_LOST:
      return "CONNECTION";
    default:
      return "OTHER";
  }
}

const LINK_ERROR_RE =
  /No response from server|Not connected|Connection lost|ECONNRESET|EPIPE|socket hang up|Keepalive timeout|write after end/i;

/** ssh2 reports a dropped link in several ways; all of them mean "the connection went away". */
export function looksLikeLinkError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === SFTP_NO_CONNECTION || code === SFTP_CONNECTION_LOST) return true;
  if (typeof code === "string" && ["ECONNRESET", "EPIPE", "ECONNABORTED", "ETIMEDOUT"].includes(code))
    return true;
  return error instanceof Error && LINK_ERROR_RE.test(error.message);
}

/** Promisifies one ssh2 callback call; a synchronous throw (e.g. an unsupported extension) rejects too. */
export function call<T = void>(
  fn: (cb: (err: Error | null | undefined, value?: T) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      fn((err, value) => (err ? reject(err) : resolve(value as T)));
    } catch (error) {
      reject(error);
    }
  });
}

export function toFileStat(a: Attributes): FileStat {
  const fmt = a.mode & 0o170000;
  return {
    type: fmt === 0o100000 ? "file" : fmt === 0o040000 ? "directory" : fmt === 0o120000 ? "symlink" : "other",
    size: a.size,
    mode: a.mode & 0o7777,
    // SFTP v3 carries whole seconds only
    mtimeMs: a.mtime * 1000,
    uid: a.uid,
    gid: a.gid,
  };
}

export async function lstatOrNull(sftp: SFTPWrapper, path: string): Promise<FileStat | null> {
  try {
    return toFileStat(await call<Attributes>((cb) => sftp.lstat(path, cb)));
  } catch (error) {
    if (sftpCode(error) === SFTP_NO_SUCH_FILE) return null;
    throw error;
  }
}

/** Whether the server offers an `@openssh.com` extension (ssh2 keeps the VERSION packet's list). */
export function hasExtension(sftp: SFTPWrapper, name: string): boolean {
  const ext = (sftp as unknown as { _extensions?: Record<string, string> })._extensions;
  return ext?.[name] === "1";
}

/**
 * Largest WRITE payload the server accepts (limits@openssh.com), or the SFTP v3 safe size: exactly
 * what ssh2 sends in one request, so a piece of this size is copied whole into its packet at once (a
 * longer one would have its rest sent later, from the caller's buffer).
 */
export function maxWriteLength(sftp: SFTPWrapper): number {
  const n = (sftp as unknown as { _maxWriteLen?: number })._maxWriteLen;
  return typeof n === "number" && Number.isInteger(n) && n > 0 ? n : 32 * 1024;
}

/**
 * Writes a stream of buffers at increasing offsets with up to `maxInFlight` WRITE requests pending:
 * ssh2's own write stream waits for each reply, which caps throughput at one chunk per round trip.
 * The source is pulled only when a slot is free, so memory stays bounded (backpressure).
 */
export async function writePipelined(
  sftp: SFTPWrapper,
  handle: Buffer,
  source: AsyncIterable<Buffer> | Iterable<Buffer>,
  options: { maxInFlight?: number; signal?: AbortSignal | undefined } = {},
): Promise<number> {
  const chunk = maxWriteLength(sftp);
  const maxInFlight = options.maxInFlight ?? 16;
  let position = 0;
  let inFlight = 0;
  let failed: Error | undefined;
  let wake: (() => void) | undefined;
  const settled = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const slot = () => new Promise<void>((resolve) => (wake = resolve));
  try {
    for await (const buffer of source) {
      for (let offset = 0; offset < buffer.length; offset += chunk) {
        while (inFlight >= maxInFlight && !failed) await slot();
        if (failed) throw failed;
        options.signal?.throwIfAborted();
        const part = buffer.subarray(offset, offset + chunk);
        const at = position;
        position += part.length;
        inFlight++;
        sftp.write(handle, part, 0, part.length, at, (err) => {
          inFlight--;
          if (err && !failed) failed = err;
          settled();
        });
      }
    }
  } finally {
    while (inFlight > 0) await slot();
  }
  if (failed) throw failed;
  return position;
}

// --- Remote commands ---

const PID_MARKER = "\u001eatomkit-pid ";

/** The pid in the first stderr line of every exec (the remote process group id, so a timeout can kill it). */
export function parsePidMarker(line: string): number | undefined {
  if (!line.startsWith(PID_MARKER)) return undefined;
  const digits = line.slice(PID_MARKER.length);
  return /^\d+$/.test(digits) ? Number(digits) : undefined;
}

/**
 * The command line sent in an SSH exec request. The server hands it to the user's login shell, so
 * every word is quoted for a POSIX shell. The shell first reports its pid on stderr (sshd made it a
 * session leader, so that pid is the process group), then `exec` replaces it with the program.
 */
export function remoteCommand(
  argv: readonly string[],
  options: { cwd?: string | undefined; env?: Record<string, string> | undefined } = {},
): string {
  const parts: string[] = [`printf '\\036atomkit-pid %s\\n' "$$" >&2`];
  if (options.cwd !== undefined) parts.push(`cd -- ${shellQuote(options.cwd)}`);
  const vars = Object.entries(checkedEnv(options.env ?? {}));
  if (vars.length) parts.push(`export ${vars.map(([k, v]) => `${k}=${shellQuote(v)}`).join(" ")}`);
  // no `exec --`: dash treats `--` as the program name
  parts.push(`exec ${argv.map(shellQuote).join(" ")}`);
  return parts.join(" && ");
}

/** The kit's `env` check, as the HostError a Host method throws (a name that would break the command line). */
function checkedEnv(vars: Record<string, string>): Record<string, string> {
  try {
    return env(vars, "env");
  } catch (error) {
    throw new HostError("OTHER", `invalid environment: ${(error as Error).message}`, {
      expected: "names of letters, digits and '_', not starting with a digit; values without NUL bytes",
      cause: error,
    });
  }
}

/** Expands `~`, `%d`, `%u`, `%h`, `%r` and `%%` in an ssh_config path, as ssh(1) does for IdentityFile. */
export function expandPath(path: string, tokens: { host: string; user: string }): string {
  let localUser = "unknown";
  try {
    localUser = userInfo().username;
  } catch {}
  const home = homedir();
  const expanded = path.replace(/%([%duhr])/g, (_m, t: string) =>
    t === "%" ? "%" : t === "d" ? home : t === "u" ? localUser : t === "h" ? tokens.host : tokens.user,
  );
  return expanded === "~" ? home : expanded.startsWith("~/") ? `${home}${expanded.slice(1)}` : expanded;
}

/** Keeps the last `max` bytes of a stream's output, decoded once at the end (no split UTF-8). */
export class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.max && this.chunks.length > 1) {
      this.size -= this.chunks.shift()?.length ?? 0;
    }
  }
  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.max)).toString("utf8");
  }
}

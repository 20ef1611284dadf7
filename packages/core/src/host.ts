import type { Duplex } from "node:stream";
import { HostError } from "./errors";

/**
 * Where steps act: the local machine (`localHost()`) or a remote one (`sshHost()` in @atomkit/step-ssh).
 * Steps talk only to a Host, so one step kind runs unchanged on either.
 *
 * Failing operations throw a `HostError` whose `reason` is normalised (`ENOENT`, `EEXIST`, …) so a
 * step can branch on it without knowing which host it runs on.
 */
export interface Host {
  /** Shown in errors, events and the trail, e.g. `local` or `deploy@10.0.0.5:22`. */
  readonly name: string;
  /** Directory on the host for Atomkit's own state: locks, trash, backups. */
  readonly stateDir: string;
  /** True when the host is the machine Atomkit runs on: a step may then use local fast paths. */
  readonly local?: boolean;

  /** Runs a program with an argv (never a shell string). Throws on a non-zero exit unless `reject: false`. */
  exec(argv: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /** `null` when nothing is there. Follows symlinks. */
  stat(path: string): Promise<FileStat | null>;
  /** `null` when nothing is there. Does not follow a final symlink. */
  lstat(path: string): Promise<FileStat | null>;
  readFile(path: string): Promise<Buffer>;
  /**
   * Atomic by default: writes a temporary file beside `path`, syncs it and renames it into place, so a
   * reader sees the old or the new content, never a mix. `exclusive` instead creates `path` with its
   * whole content or fails with `EEXIST` if anything is there (what locks are built on): the content is
   * written to a temporary file first and hard-linked into place, so no reader (and no crash) ever
   * leaves `path` empty or partial.
   */
  writeFile(path: string, data: string | Uint8Array, options?: WriteFileOptions): Promise<void>;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string, options?: { recursive?: boolean; mode?: number }): Promise<void>;
  rm(path: string, options?: { recursive?: boolean; force?: boolean }): Promise<void>;
  /**
   * rmdir(2): removes an empty directory and nothing else, in one step: `ENOTEMPTY` when anything is
   * in it, `ENOTDIR` when `path` is not a directory, `ENOENT` when nothing is there. An undo that
   * removes the directory it made uses this, so it can never delete what someone put there since.
   */
  rmdir(path: string): Promise<void>;
  /** rename(2): atomic on one filesystem; replaces a file or symlink at `to`. */
  rename(from: string, to: string): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
  readlink(path: string): Promise<string>;
  /**
   * realpath(3): the absolute path with every symlink, `.` and `..` resolved; rejects `ENOENT` when a
   * component is missing. Optional (a host without it makes callers run `pwd -P` through `exec`): one
   * file-system call where a command would cost a whole session on an SSH host.
   */
  realpath?(path: string): Promise<string>;
  chmod(path: string, mode: number): Promise<void>;
  /** sha256 (hex) of a file's content, computed on the host. */
  hash(path: string): Promise<string>;
  /** Streams a local file to the host (constant memory) and returns what was sent. */
  upload(localPath: string, path: string, options?: UploadOptions): Promise<UploadResult>;
  /**
   * A stream to a server on the host itself: a TCP port (`{ port, hostname? }`, hostname default
   * `127.0.0.1` as seen from the host) or a unix socket (`{ path }`, e.g. `/var/run/docker.sock`).
   * `net.connect` locally; over SSH a `direct-tcpip` or `direct-streamlocal@openssh.com` channel of the
   * host's one connection.
   */
  connect(target: ConnectTarget, options?: ConnectOptions): Promise<Duplex>;
  /** @deprecated pass `{ port, hostname }`; a bare port is accepted for one more release. */
  connect(port: number, options?: ConnectOptions & { hostname?: string }): Promise<Duplex>;
  /** Takes a named lease on the host (see `acquireLease`). */
  lock(name: string, options: LockOptions): Promise<Lease>;
  close(): Promise<void>;
}

/** What `Host.connect` reaches: a TCP port or a unix socket, on the host itself. */
export type ConnectTarget = { port: number; hostname?: string } | { path: string };

/** Where `Host.connect` opens a stream on the host: a TCP port or a unix socket path. */
export interface ConnectOptions {
  signal?: AbortSignal;
}

/**
 * The target of a `Host.connect` call in its current form: a bare port (the deprecated first
 * signature) becomes `{ port, hostname }`. For Host implementations; throws on anything else.
 */
export function connectTarget(
  target: ConnectTarget | number,
  options: { hostname?: string } = {},
): { port: number; hostname: string } | { path: string } {
  if (typeof target === "number") return { port: target, hostname: options.hostname ?? "127.0.0.1" };
  if (target && typeof target === "object") {
    if ("path" in target && typeof target.path === "string" && target.path) return { path: target.path };
    if ("port" in target && Number.isInteger(target.port)) {
      return { port: target.port, hostname: target.hostname ?? "127.0.0.1" };
    }
  }
  throw new HostError("OTHER", "connect needs a TCP port or a unix socket path", {
    expected: "{ port: number, hostname?: string } or { path: string }",
    found: target,
    hint: "e.g. host.connect({ port: 8080 }) or host.connect({ path: '/var/run/docker.sock' })",
  });
}

/** Options of `Host.exec`: working directory, environment, input, signal and whether a non-zero exit throws. */
export interface ExecOptions {
  cwd?: string;
  /** Added to the host's environment. */
  env?: Record<string, string>;
  input?: string | Uint8Array;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Default true: a non-zero exit throws a HostError with reason `EXIT`. */
  reject?: boolean;
}

/** What `Host.exec` returns: exit code (or signal) and the output. */
export interface ExecResult {
  /** `null` when the process was ended by a signal. */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** What `Host.lstat`/`Host.stat` return: type, size, mode, mtime and owner. */
export interface FileStat {
  type: "file" | "directory" | "symlink" | "other";
  size: number;
  /** Permission bits only, e.g. 0o644. */
  mode: number;
  mtimeMs: number;
  uid: number;
  gid: number;
}

/** Options of `Host.writeFile` (the host's own write, not the `fs.write` step's options). */
export interface WriteFileOptions {
  mode?: number;
  exclusive?: boolean;
}

/** Options of `Host.upload`: the file's mode and a signal. */
export interface UploadOptions {
  mode?: number;
  signal?: AbortSignal;
}

/** What `Host.upload` returns: the bytes written and their sha256. */
export interface UploadResult {
  sha256: string;
  bytes: number;
}

/** Options of `Host.lock`: owner, time to live, a note, and whether to take over a stale or a known dead holder's lease. */
export interface LockOptions {
  /** Who holds the lease, e.g. `alice@laptop`. */
  owner: string;
  /** A lease whose heartbeat is older than this is stale. Default 60 000. */
  ttlMs?: number;
  /** Take over a stale lease instead of failing. Default false: a human decides. */
  breakStale?: boolean;
  /**
   * Take over the lease held under this token, stale or not: its holder is known to be dead (recover
   * holds the store lock that holder's controller held, so that controller's session ended).
   */
  breakToken?: string;
  /** Written into the lease, e.g. the run id. */
  note?: string;
}

/** Who holds a host lock: owner, pid, machine and times, as the lease file records them. */
export interface LeaseInfo {
  name: string;
  owner: string;
  pid: number;
  machine: string;
  host: string;
  startedAt: string;
  heartbeatAt: string;
  ttlMs: number;
  token: string;
  note?: string;
}

/** A held host lock (`Host.lock`): who holds it, a signal that aborts when it is lost, and `release`. */
export interface Lease {
  readonly info: LeaseInfo;
  /** Aborted when the lease was lost (taken over or removed by someone else). */
  readonly signal: AbortSignal;
  release(): Promise<void>;
}

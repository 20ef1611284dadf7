import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { homedir, userInfo } from "node:os";
import { posix } from "node:path";
import type { Duplex } from "node:stream";
import {
  acquireLease,
  type ConnectOptions,
  type ConnectTarget,
  type ExecOptions,
  type ExecResult,
  execError,
  type FileStat,
  type Host,
  HostError,
  type HostErrorReason,
  isNotFound,
  shellQuote,
  tempBeside,
  type UploadResult,
} from "@atomkit/core";
import { connectTarget } from "@atomkit/core/kit";
import { SSHConfig } from "ssh-config";
import type { Attributes, ClientChannel, ConnectConfig, SFTPWrapper } from "ssh2";
import { Connection, type HostKeyPolicy, type Link } from "./_connection";
import { linkOverExec } from "./_link";
import {
  call,
  expandPath,
  hasExtension,
  lstatOrNull,
  maxWriteLength,
  OutputTail,
  parsePidMarker,
  reasonOfStatus,
  remoteCommand,
  SFTP_FAILURE,
  SFTP_NO_SUCH_FILE,
  sftpCode,
  toFileStat,
  writePipelined,
} from "./_utils";

export type { HostKeyPolicy } from "./_connection";

export interface SshHostOptions {
  /** Name or address to connect to; with `sshConfig`, a `Host` alias of the config. **Required.** */
  host: string;
  /** @default 22, or the config's `Port` */
  port?: number;
  /** @default the config's `User`, else the local user name */
  username?: string;
  /** Private key text (OpenSSH or PEM). Secret: never shown in errors or logs. */
  privateKey?: string | Buffer;
  /** Path of a private key file, read at each (re)connect. */
  privateKeyPath?: string;
  /** Passphrase of an encrypted private key. Secret. */
  passphrase?: string;
  /** An ssh-agent socket path, or `true` for `$SSH_AUTH_SOCK`. */
  agent?: string | true;
  /** Password authentication. Secret. Prefer keys. */
  password?: string;
  /**
   * known_hosts files the host key is checked against (plain `host`, `[host]:port`, wildcard and
   * hashed `|1|` entries; `@revoked` honoured, `@cert-authority` not supported).
   * @default the config's `UserKnownHostsFile`, else `~/.ssh/known_hosts` and `/etc/ssh/ssh_known_hosts`
   */
  knownHosts?: string | readonly string[];
  /**
   * How the server's key is verified. `"known-hosts"` refuses an unknown or changed key with its
   * fingerprint and the line to add. A `"SHA256:…"` fingerprint pins one key. `"insecure-accept-any"`
   * turns verification off and prints a warning at every new key: for throwaway test hosts only.
   * @default "known-hosts"
   */
  hostKey?: HostKeyPolicy;
  /**
   * Read `HostName`, `Port`, `User`, `IdentityFile` and `UserKnownHostsFile` for `host` from an
   * ssh_config file: `true` for `~/.ssh/config`, or a path. Explicit options win. `Match exec` is not run.
   * @default false
   */
  sshConfig?: boolean | string;
  /**
   * Directory on the remote host for Atomkit's state (locks, backups).
   * @default `~/.atomkit` of the remote user, resolved at the first connection (`/tmp/atomkit-<user>`
   * if the server reports no home). Until then it reads `.atomkit`, which the server resolves against
   * the same home directory; call `await host.ready()` to have the absolute path.
   */
  stateDir?: string;
  /** @default `user@host:port` */
  name?: string;
  /** SSH keep-alive probe interval. 0 turns it off. @default 15 000 */
  keepaliveIntervalMs?: number;
  /** Unanswered probes before the link counts as dropped. @default 3 */
  keepaliveCountMax?: number;
  /** Handshake timeout. @default 20 000 */
  readyTimeoutMs?: number;
  /** Connection attempts after the first, when the network (not a key) fails. @default `{ retries: 3, backoffMs: 250 }`, doubled per attempt */
  reconnect?: { retries?: number; backoffMs?: number };
  /** Session channels (exec + SFTP) open at once; OpenSSH allows 10 by default (MaxSessions). @default 8 */
  maxChannels?: number;
  /** Where the insecure-mode warning goes. @default console.warn */
  warn?: (message: string) => void;
}

/** A Host over one SSH connection; `ready()` connects now (and resolves `stateDir`). */
export interface SshHost extends Host {
  readonly local: false;
  ready(): Promise<void>;
  /** Whether the connection is open right now (it reopens on the next call if not). */
  readonly connected: boolean;
}

/** Output kept per stream of `exec`, as localHost keeps. */
const MAX_OUTPUT = 4 * 1024 * 1024;
/**
 * Bytes of an upload's pending WRITE requests (4 × ~255 KiB with OpenSSH): enough to keep a LAN busy
 * (1 MiB per round trip), and what a fleet pays per host in flight, since each pending request is
 * held in ssh2's packet and then in the socket's queue until the server reads it.
 */
const UPLOAD_BYTES_IN_FLIGHT = 1024 * 1024;

/**
 * A Host on a remote machine over SSH (ssh2): one connection per host shared by every step, with exec
 * channels and one SFTP session multiplexed over it, keep-alive, and a bounded reconnect on the next
 * call after a drop. Host keys are verified against known_hosts unless told otherwise.
 */
export function sshHost(options: SshHostOptions): SshHost {
  if (!options || typeof options.host !== "string" || !options.host) {
    throw new HostError("OTHER", "sshHost needs a host", {
      expected: "{ host: 'server.example.com', … }",
      found: options?.host,
    });
  }
  const cfg = options.sshConfig ? readSshConfig(options.sshConfig, options.host) : {};
  const hostname = options.host && cfg.hostname ? cfg.hostname : options.host;
  const port = options.port ?? (cfg.port ? Number(cfg.port) : 22);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new HostError("OTHER", `invalid SSH port for ${options.host}`, {
      expected: "an integer 1-65535",
      found: port,
    });
  }
  const username = options.username ?? cfg.user ?? localUser();
  const name = options.name ?? `${username}@${options.host}:${port}`;
  const tokens = { host: hostname, user: username };
  const knownHosts = options.knownHosts
    ? [options.knownHosts].flat().map((f) => expandPath(f, tokens))
    : cfg.userknownhostsfile
      ? cfg.userknownhostsfile.split(/\s+/).map((f) => expandPath(f, tokens))
      : [`${homedir()}/.ssh/known_hosts`, "/etc/ssh/ssh_known_hosts"];
  const hostKey = options.hostKey ?? "known-hosts";
  if (hostKey !== "known-hosts" && hostKey !== "insecure-accept-any" && !hostKey.startsWith("SHA256:")) {
    throw new HostError("OTHER", `invalid hostKey option for ${name}`, {
      expected: '"known-hosts", "insecure-accept-any" or a "SHA256:…" fingerprint',
      found: hostKey,
    });
  }
  const { credentials, shown } = credentialSource(options, cfg.identityfile, tokens);

  const conn = new Connection({
    name,
    host: hostname,
    port,
    username,
    credentials,
    credentialsShown: shown,
    knownHosts,
    hostKey,
    keepaliveIntervalMs: options.keepaliveIntervalMs ?? 15_000,
    keepaliveCountMax: options.keepaliveCountMax ?? 3,
    readyTimeoutMs: options.readyTimeoutMs ?? 20_000,
    retries: options.reconnect?.retries ?? 3,
    backoffMs: options.reconnect?.backoffMs ?? 250,
    maxChannels: options.maxChannels ?? 8,
    warn: options.warn ?? ((m) => console.warn(m)),
  });

  let stateDir = options.stateDir ?? ".atomkit";
  if (!options.stateDir) {
    conn.onLink = async (link) => {
      if (stateDir.startsWith("/")) return;
      const sftp = await conn.sftp(link);
      const home = await call<string>((cb) => sftp.realpath(".", cb)).catch(() => "");
      stateDir = home && home !== "/" ? `${home.replace(/\/+$/, "")}/.atomkit` : `/tmp/atomkit-${username}`;
    };
  }

  // --- Error helpers ---

  const fail = (reason: HostErrorReason, op: string, path: string, error: unknown, hint?: string) =>
    new HostError(reason, `${op} ${path} failed: ${messageOf(error)}`, {
      host: name,
      cause: error,
      ...(hint ? { hint } : {}),
    });

  const toHostError = (op: string, path: string, error: unknown, link: Link): HostError => {
    if (error instanceof HostError) return error;
    const code = sftpCode(error);
    if (code !== undefined && code >= 1 && code <= 8 && code !== 6 && code !== 7) {
      return fail(reasonOfStatus(code), op, path, error);
    }
    if (conn.isLinkFailure(error, link)) return conn.linkError(`${op} ${path}`, error, link);
    return fail("OTHER", op, path, error);
  };

  /** One SFTP operation on the current link; its errors become HostErrors naming `op` and `path`. */
  const sftpOp = async <T>(
    op: string,
    path: string,
    fn: (sftp: SFTPWrapper, link: Link) => Promise<T>,
  ): Promise<T> => {
    const link = await conn.get();
    try {
      return await fn(await conn.sftp(link), link);
    } catch (error) {
      throw toHostError(op, path, error, link);
    }
  };

  /**
   * A read-only call, run once more on a new link when the link dropped under it: it changed nothing,
   * so running it again is safe. (A call that changes something fails CONNECTION instead, since whether
   * it landed is unknown; a host that cannot be reached at all is not tried again either.)
   */
  const readOnly = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      if (!conn.droppedUnder(error)) throw error;
      return fn();
    }
  };

  /**
   * SFTP says FAILURE for EEXIST, ENOTEMPTY, EISDIR… and "no such file" for ENOTDIR: look at the path
   * to name the real reason.
   */
  const explain = async (
    sftp: SFTPWrapper,
    op: string,
    path: string,
    error: unknown,
    reasons: (st: FileStat | null) => HostErrorReason | undefined,
  ): Promise<never> => {
    const code = sftpCode(error);
    if (code === SFTP_FAILURE || code === SFTP_NO_SUCH_FILE) {
      const reason = reasons(await lstatOrNull(sftp, path).catch(() => null));
      if (reason) throw fail(reason, op, path, new Error(`${messageOf(error)} (${reason})`));
    }
    throw error;
  };

  const statOrNull = (op: "stat" | "lstat", path: string) =>
    sftpOp(op, path, async (sftp) => {
      try {
        return toFileStat(await call<Attributes>((cb) => sftp[op](path, cb)));
      } catch (error) {
        if (sftpCode(error) === SFTP_NO_SUCH_FILE) return null;
        throw error;
      }
    });

  const readFileOnce = (path: string) =>
    sftpOp("readFile", path, async (sftp) => {
      try {
        return await call<Buffer>((cb) => sftp.readFile(path, cb));
      } catch (error) {
        // gone by now (e.g. /proc/<pid>/stat of a process that exited between open and read): ENOENT
        return explain(sftp, "readFile", path, error, (st) =>
          !st ? "ENOENT" : st.type === "directory" ? "EISDIR" : undefined,
        );
      }
    });

  const hashOnce = async (path: string): Promise<string> => {
    const r = await host.exec(["sha256sum", "--", path], { reject: false }).catch((error: unknown) => {
      if (error instanceof HostError && error.reason === "ENOENT") return null; // no sha256sum there
      throw error;
    });
    if (r && r.code === 0) {
      const m = /^\\?([0-9a-f]{64})\b/.exec(r.stdout);
      if (m?.[1]) return m[1];
    }
    if (r && r.code !== 0) {
      const st = await statOrNull("stat", path);
      if (!st) throw fail("ENOENT", "hash", path, new Error(r.stderr.trim() || "No such file or directory"));
      if (st.type === "directory") throw fail("EISDIR", "hash", path, new Error(r.stderr.trim()));
      if (/Permission denied/.test(r.stderr)) throw fail("EACCES", "hash", path, new Error(r.stderr.trim()));
    }
    // no usable sha256sum on the host: hash the bytes here
    return createHash("sha256")
      .update(await readFileOnce(path))
      .digest("hex");
  };

  /** Opens `path`, writes `source`, applies `mode`, fsyncs (when the server can) and closes. */
  const writeHandle = async (
    op: "writeFile" | "upload",
    sftp: SFTPWrapper,
    path: string,
    flags: "w" | "wx",
    source: AsyncIterable<Buffer> | Iterable<Buffer>,
    mode: number | undefined,
    signal?: AbortSignal,
  ): Promise<number> => {
    let handle: Buffer;
    try {
      handle = await call<Buffer>((cb) => sftp.open(path, flags, { mode: mode ?? 0o644 }, cb));
    } catch (error) {
      return explain(sftp, op, path, error, (st) =>
        st ? (flags === "wx" ? "EEXIST" : st.type === "directory" ? "EISDIR" : undefined) : undefined,
      );
    }
    try {
      const maxInFlight = Math.min(
        64,
        Math.max(2, Math.floor(UPLOAD_BYTES_IN_FLIGHT / maxWriteLength(sftp))),
      );
      const bytes = await writePipelined(sftp, handle, source, { maxInFlight, signal });
      // open()'s mode is filtered by the server's umask, as locally
      if (mode !== undefined) await call((cb) => sftp.fchmod(handle, mode, cb));
      if (hasExtension(sftp, "fsync@openssh.com")) await call((cb) => sftp.ext_openssh_fsync(handle, cb));
      return bytes;
    } finally {
      await call((cb) => sftp.close(handle, cb)).catch(() => {});
    }
  };

  const renameOn = async (sftp: SFTPWrapper, from: string, to: string) => {
    try {
      if (hasExtension(sftp, "posix-rename@openssh.com")) {
        await call((cb) => sftp.ext_openssh_rename(from, to, cb));
      } else {
        // plain SFTP rename refuses an existing target: only atomic where posix-rename exists
        await call((cb) => sftp.rename(from, to, cb));
      }
    } catch (error) {
      if (sftpCode(error) !== SFTP_FAILURE) throw error;
      const [src, dst] = await Promise.all([lstatOrNull(sftp, from), lstatOrNull(sftp, to)]);
      if (!src) throw fail("ENOENT", "rename", `${from} -> ${to}`, error);
      if (dst?.type === "directory") {
        const reason = src.type === "directory" ? "ENOTEMPTY" : "EISDIR";
        throw fail(reason, "rename", `${from} -> ${to}`, error);
      }
      if (dst && src.type === "directory") throw fail("ENOTDIR", "rename", `${from} -> ${to}`, error);
      throw error;
    }
  };

  /** link(2) `from` to `to`: fails EEXIST when anything is at `to`, where a rename would replace it. */
  const linkInto = async (sftp: SFTPWrapper, from: string, to: string): Promise<void> => {
    if (!hasExtension(sftp, "hardlink@openssh.com")) return linkOverExec(host, from, to);
    try {
      await call((cb) => sftp.ext_openssh_hardlink(from, to, cb));
    } catch (error) {
      return explain(sftp, "writeFile", to, error, (st) => (st ? "EEXIST" : undefined));
    }
  };

  // --- exec ---

  const execOnce = (
    link: Link,
    command: string,
    shown: string,
    program: string,
    opts: ExecOptions,
  ): Promise<ExecResult> =>
    new Promise<ExecResult>((resolve, reject) => {
      link.client.exec(command, (err, channel) => {
        if (err) {
          reject(
            conn.isLinkFailure(err, link)
              ? conn.linkError(`exec \`${shown}\``, err, link)
              : new HostError("OTHER", `cannot run \`${shown}\`: ${err.message}`, { host: name, cause: err }),
          );
          return;
        }
        const stdout = new OutputTail(MAX_OUTPUT);
        const stderr = new OutputTail(MAX_OUTPUT);
        let exit: { code: number | null; signal: string | null } | undefined;
        let timedOut = false;
        let aborted = false;
        let stopping = false;
        let closed = false;
        let pid: number | undefined;
        let head: Buffer | undefined = Buffer.alloc(0);
        let timer: NodeJS.Timeout | undefined;
        let killTimer: NodeJS.Timeout | undefined;
        const kill = () => {
          // OpenSSH refuses signal requests in some setups (e.g. as root: "session signalling requires
          // privilege separation"), so kill the process group from a second channel as well
          killChannel(channel);
          if (pid !== undefined && !closed) killGroup(link, pid);
        };
        const stop = () => {
          if (stopping) return;
          stopping = true;
          kill();
          killTimer = setTimeout(() => channel.close(), 5_000);
        };
        const onAbort = () => {
          aborted = true;
          stop();
        };
        channel.on("data", (d: Buffer) => stdout.push(d));
        channel.stderr.on("data", (d: Buffer) => {
          if (!head) return stderr.push(d);
          head = Buffer.concat([head, d]);
          const nl = head.indexOf(10);
          if (nl === -1 && head.length < 64) return;
          const found = parsePidMarker(head.subarray(0, nl === -1 ? head.length : nl).toString("latin1"));
          const rest = found === undefined ? head : head.subarray(nl + 1);
          head = undefined;
          if (rest.length) stderr.push(rest);
          if (found !== undefined) {
            pid = found;
            if (stopping) kill();
          }
        });
        channel.on("error", () => {});
        channel.on("exit", (code: number | null, signal?: string) => {
          exit = { code: typeof code === "number" ? code : null, signal: signal ?? null };
        });
        channel.on("close", () => {
          closed = true;
          if (head?.length) stderr.push(head);
          if (timer) clearTimeout(timer);
          if (killTimer) clearTimeout(killTimer);
          opts.signal?.removeEventListener("abort", onAbort);
          if (aborted) {
            reject(
              new HostError("OTHER", `\`${shown}\` was aborted`, {
                host: name,
                cause: opts.signal?.reason,
              }),
            );
            return;
          }
          if (!exit && timedOut) exit = { code: null, signal: "SIGKILL" };
          if (!exit) {
            reject(
              conn.isLinkFailure(new Error("channel closed"), link)
                ? conn.linkError(
                    `exec \`${shown}\``,
                    new Error("channel closed without an exit status"),
                    link,
                  )
                : new HostError("OTHER", `\`${shown}\` ended without an exit status`, { host: name }),
            );
            return;
          }
          const result: ExecResult = { ...exit, stdout: stdout.text(), stderr: stderr.text() };
          // the remote shell reports a missing program as exit 127: the same ENOENT localHost throws
          if (result.code === 127 && /\bexec: .*not found/.test(result.stderr)) {
            reject(
              new HostError("ENOENT", `cannot run \`${shown}\`: ${result.stderr.trim()}`, {
                host: name,
                exitCode: 127,
                stderr: result.stderr,
                hint: `install ${program} on the host or fix the path`,
              }),
            );
            return;
          }
          if ((result.code !== 0 || result.signal) && opts.reject !== false) {
            reject(execError(name, shown, result));
          } else resolve(result);
        });
        const input = opts.input;
        channel.end(input === undefined ? undefined : typeof input === "string" ? input : Buffer.from(input));
        if (opts.timeoutMs !== undefined) {
          timer = setTimeout(() => {
            timedOut = true;
            stop();
          }, opts.timeoutMs);
        }
        if (opts.signal) {
          if (opts.signal.aborted) onAbort();
          else opts.signal.addEventListener("abort", onAbort, { once: true });
        }
      });
    });

  const host: SshHost = {
    name,
    get stateDir() {
      return stateDir;
    },
    local: false,
    get connected() {
      return conn.connected;
    },
    async ready() {
      await conn.get();
    },

    async exec(argv, opts = {}) {
      if (!argv.length || !argv[0]) {
        throw new HostError("OTHER", "exec needs a non-empty argv", { host: name, found: argv });
      }
      if (argv[0].startsWith("-")) {
        throw new HostError("OTHER", `cannot run a program named ${JSON.stringify(argv[0])}`, {
          host: name,
          hint: "a program name may not start with '-'; use ./-name",
        });
      }
      const shown = argv.map(shellQuote).join(" ");
      let command: string;
      try {
        command = remoteCommand(argv, opts);
      } catch (error) {
        throw new HostError("OTHER", `cannot run \`${shown}\`: ${messageOf(error)}`, {
          host: name,
          cause: error,
        });
      }
      if (opts.signal?.aborted) {
        throw new HostError("OTHER", `\`${shown}\` was aborted`, { host: name, cause: opts.signal.reason });
      }
      return conn.withChannel(async () =>
        execOnce(await conn.get(), command, shown, argv[0] as string, opts),
      );
    },

    // read-only: retried once on a new link when the link drops under them
    stat: (path) => readOnly(() => statOrNull("stat", path)),
    lstat: (path) => readOnly(() => statOrNull("lstat", path)),
    readFile: (path) => readOnly(() => readFileOnce(path)),
    hash: (path) => readOnly(() => hashOnce(path)),

    writeFile: (path, data, opts = {}) =>
      sftpOp("writeFile", path, async (sftp) => {
        const buffer = typeof data === "string" ? Buffer.from(data) : Buffer.from(data);
        // the whole content goes to a temp name first: `path` is never seen empty or partial
        const tmp = tempBeside(path);
        try {
          await writeHandle("writeFile", sftp, tmp, "wx", [buffer], opts.mode);
          if (opts.exclusive) await linkInto(sftp, tmp, path);
          else await renameOn(sftp, tmp, path);
        } catch (error) {
          await call((cb) => sftp.unlink(tmp, cb)).catch(() => {});
          throw error;
        }
        // `path` is created: a temp name left by a drop here is only a leftover (cleanup finds its prefix)
        if (opts.exclusive) await call((cb) => sftp.unlink(tmp, cb)).catch(() => {});
      }),

    readdir: (path) =>
      readOnly(() =>
        sftpOp("readdir", path, async (sftp) => {
          try {
            const list = await call<Array<{ filename: string }>>((cb) => sftp.readdir(path, cb));
            return list.map((e) => e.filename);
          } catch (error) {
            return explain(sftp, "readdir", path, error, (st) =>
              st && st.type !== "directory" ? "ENOTDIR" : undefined,
            );
          }
        }),
      ),

    mkdir: (path, opts = {}) =>
      sftpOp("mkdir", path, async (sftp) => {
        const attrs = opts.mode !== undefined ? { mode: opts.mode } : {};
        const make = async (dir: string): Promise<void> => {
          try {
            await call((cb) => sftp.mkdir(dir, attrs, cb));
          } catch (error) {
            const code = sftpCode(error);
            if (opts.recursive && code === SFTP_NO_SUCH_FILE && posix.dirname(dir) !== dir) {
              await make(posix.dirname(dir));
              return make(dir);
            }
            if (code === SFTP_FAILURE) {
              const st = await lstatOrNull(sftp, dir).catch(() => null);
              const isDir = st?.type === "directory" || (await isDirectory(sftp, dir));
              if (opts.recursive && isDir) return;
              if (st) throw fail("EEXIST", "mkdir", dir, error);
            }
            throw error;
          }
        };
        await make(path);
      }),

    rm: (path, opts = {}) =>
      sftpOp("rm", path, async (sftp, link) => {
        const st = await lstatOrNull(sftp, path);
        if (!st) {
          if (opts.force) return;
          throw fail("ENOENT", "rm", path, new Error("No such file or directory"));
        }
        if (st.type !== "directory") {
          await call((cb) => sftp.unlink(path, cb));
          return;
        }
        if (!opts.recursive) {
          throw fail("EISDIR", "rm", path, new Error("Path is a directory"), "pass { recursive: true }");
        }
        // one `rm -rf` beats a round trip per entry over SFTP
        const r = await conn.withChannel(() =>
          execOnce(link, remoteCommand(["rm", "-rf", "--", path]), `rm -rf -- ${shellQuote(path)}`, "rm", {
            reject: false,
          }),
        );
        if (r.code !== 0) {
          throw fail(
            /Permission denied/.test(r.stderr) ? "EACCES" : "OTHER",
            "rm",
            path,
            new Error(r.stderr.trim()),
          );
        }
      }),

    rmdir: (path) =>
      sftpOp("rmdir", path, async (sftp) => {
        try {
          await call((cb) => sftp.rmdir(path, cb));
        } catch (error) {
          // sftp-server answers FAILURE for ENOTEMPTY and ENOTDIR alike
          return explain(sftp, "rmdir", path, error, (st) =>
            !st ? "ENOENT" : st.type === "directory" ? "ENOTEMPTY" : "ENOTDIR",
          );
        }
      }),

    rename: (from, to) => sftpOp("rename", `${from} -> ${to}`, (sftp) => renameOn(sftp, from, to)),

    symlink: (target, path) =>
      sftpOp("symlink", path, async (sftp) => {
        try {
          // ssh2 swaps the arguments for OpenSSH, whose server has them reversed
          await call((cb) => sftp.symlink(target, path, cb));
        } catch (error) {
          return explain(sftp, "symlink", path, error, (st) => (st ? "EEXIST" : undefined));
        }
      }),

    readlink: (path) =>
      readOnly(() => sftpOp("readlink", path, (sftp) => call<string>((cb) => sftp.readlink(path, cb)))),

    chmod: (path, mode) => sftpOp("chmod", path, (sftp) => call((cb) => sftp.chmod(path, mode, cb))),

    upload: (localPath, path, opts = {}) =>
      sftpOp("upload", path, async (sftp) => {
        const hash = createHash("sha256");
        // open the local file first: a missing source must not truncate the remote file
        let file: FileHandle;
        try {
          file = await open(localPath, "r");
        } catch (error) {
          throw new HostError(
            isNotFound(error) ? "ENOENT" : "OTHER",
            `upload ${localPath} failed: ${messageOf(error)}`,
            { host: name, cause: error, hint: "the local file to upload must exist" },
          );
        }
        // plain reads, pulled only when the writer has a free slot: backpressure without stream plumbing.
        // One buffer of one WRITE's size for the whole file: ssh2 copies a WRITE's payload into its
        // packet before write() returns, and writePipelined sends each piece before pulling the next.
        const buffer = Buffer.allocUnsafe(maxWriteLength(sftp));
        async function* hashed(): AsyncIterable<Buffer> {
          for (;;) {
            const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
            if (bytesRead === 0) return;
            const chunk = buffer.subarray(0, bytesRead);
            hash.update(chunk);
            yield chunk;
          }
        }
        let bytes: number;
        try {
          bytes = await writeHandle("upload", sftp, path, "w", hashed(), opts.mode, opts.signal);
        } finally {
          await file.close().catch(() => {});
        }
        const result: UploadResult = { sha256: hash.digest("hex"), bytes };
        return result;
      }),

    async connect(to: ConnectTarget | number, opts: ConnectOptions & { hostname?: string } = {}) {
      const target = connectTarget(to, opts);
      const shown = "path" in target ? target.path : `${target.hostname}:${target.port}`;
      opts.signal?.throwIfAborted();
      const link = await conn.get();
      const channel = await new Promise<ClientChannel>((resolve, reject) => {
        const done = (err: Error | undefined, ch: ClientChannel) => {
          if (!err) return resolve(ch);
          reject(
            conn.isLinkFailure(err, link)
              ? conn.linkError(`connect ${shown}`, err, link)
              : new HostError("OTHER", `connect ${shown} failed: ${err.message}`, {
                  host: name,
                  cause: err,
                  expected: `a server listening on ${shown} (as seen from ${name})`,
                  hint:
                    "path" in target
                      ? "is the service up? (sshd's AllowStreamLocalForwarding must also permit it)"
                      : "is the service up? (sshd's AllowTcpForwarding must also permit it)",
                }),
          );
        };
        if ("path" in target) link.client.openssh_forwardOutStreamLocal(target.path, done);
        else link.client.forwardOut("127.0.0.1", 0, target.hostname, target.port, done);
      });
      if (opts.signal) {
        const onAbort = () => channel.destroy();
        opts.signal.addEventListener("abort", onAbort, { once: true });
        channel.once("close", () => opts.signal?.removeEventListener("abort", onAbort));
      }
      return channel as unknown as Duplex;
    },

    async lock(lockName, opts) {
      await conn.get(); // stateDir is absolute from here on
      return acquireLease(host, lockName, opts);
    },

    close: () => conn.close(),
  };
  return host;
}

// --- Internal helpers ---

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function localUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? "root";
  }
}

async function isDirectory(sftp: SFTPWrapper, path: string): Promise<boolean> {
  try {
    return toFileStat(await call<Attributes>((cb) => sftp.stat(path, cb))).type === "directory";
  } catch {
    return false;
  }
}

/** `kill -KILL -<pgid>` on a channel of its own; best effort (the link may be gone). */
function killGroup(link: Link, pid: number): void {
  if (link.closed) return;
  try {
    link.client.exec(remoteCommand(["kill", "-s", "KILL", "--", `-${pid}`]), (err, channel) => {
      if (err) return;
      channel.on("error", () => {});
      channel.resume();
      channel.stderr.resume();
      channel.end();
    });
  } catch {
    // the link dropped: the process is orphaned but sshd closed its pipes
  }
}

/** Sends SIGKILL to the remote process group (OpenSSH ≥ 7.9), even after our stdin is closed. */
function killChannel(channel: ClientChannel): void {
  // Channel.signal() refuses once stdin has ended (it checks `writable`); the request itself is fine
  const ch = channel as unknown as {
    outgoing?: { id: number; state: string };
    _client?: { _protocol?: { signal(id: number, sig: string): void } };
  };
  try {
    if (ch.outgoing && (ch.outgoing.state === "open" || ch.outgoing.state === "eof")) {
      ch._client?._protocol?.signal(ch.outgoing.id, "KILL");
    }
  } catch {
    // the channel is already gone
  }
}

interface SshConfigValues {
  hostname?: string;
  port?: string;
  user?: string;
  identityfile?: string[];
  userknownhostsfile?: string;
}

function readSshConfig(source: true | string, alias: string): SshConfigValues {
  const path = source === true ? `${homedir()}/.ssh/config` : source;
  if (!existsSync(path)) {
    if (source === true) return {};
    throw new HostError("ENOENT", `ssh config ${path} not found`, {
      hint: "pass sshConfig: true for ~/.ssh/config, or the path of an existing file",
    });
  }
  const computed = SSHConfig.parse(readFileSync(path, "utf8")).compute(alias, {
    ignoreCase: true,
    matchExec: false,
  });
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
  const many = (v: string | string[] | undefined) => (v === undefined ? undefined : [v].flat());
  const out: SshConfigValues = {};
  const hostname = one(computed.hostname);
  const port = one(computed.port);
  const user = one(computed.user);
  const identity = many(computed.identityfile);
  const known = one(computed.userknownhostsfile);
  if (hostname) out.hostname = hostname.replace(/%h/g, alias);
  if (port) out.port = port;
  if (user) out.user = user;
  if (identity) out.identityfile = identity;
  if (known) out.userknownhostsfile = known;
  return out;
}

function credentialSource(
  o: SshHostOptions,
  identityFiles: string[] | undefined,
  tokens: { host: string; user: string },
): { credentials: () => Partial<ConnectConfig>; shown: string } {
  const agent = o.agent === true ? process.env.SSH_AUTH_SOCK : o.agent;
  if (o.agent === true && !agent) {
    throw new HostError("OTHER", "agent: true but SSH_AUTH_SOCK is not set", {
      hint: "start ssh-agent, or pass the agent socket path or a private key",
    });
  }
  const shown: string[] = [];
  let keyPath = o.privateKeyPath ? expandPath(o.privateKeyPath, tokens) : undefined;
  if (!o.privateKey && !keyPath && !agent && !o.password) {
    const candidates = [
      ...(identityFiles ?? []).map((f) => expandPath(f, tokens)),
      ...(identityFiles ? [] : ["id_ed25519", "id_ecdsa", "id_rsa"].map((f) => `${homedir()}/.ssh/${f}`)),
    ];
    keyPath = candidates.find((f) => existsSync(f));
  }
  if (o.privateKey) shown.push("the given private key");
  if (keyPath) shown.push(`key ${keyPath}`);
  const fallbackAgent =
    !o.privateKey && !keyPath && !o.password ? (agent ?? process.env.SSH_AUTH_SOCK) : agent;
  if (fallbackAgent) shown.push(`ssh-agent at ${fallbackAgent}`);
  if (o.password) shown.push("a password");
  if (!shown.length) {
    throw new HostError("OTHER", `no SSH credentials for ${tokens.user}@${tokens.host}`, {
      expected: "privateKey, privateKeyPath, agent or password (or a default key in ~/.ssh)",
      found: "none",
      hint: "pass privateKeyPath: '~/.ssh/id_ed25519' or start ssh-agent",
    });
  }
  return {
    shown: shown.join(", "),
    credentials: () => ({
      ...(o.privateKey ? { privateKey: o.privateKey } : keyPath ? { privateKey: readFileSync(keyPath) } : {}),
      ...(o.passphrase ? { passphrase: o.passphrase } : {}),
      ...(fallbackAgent ? { agent: fallbackAgent } : {}),
      ...(o.password ? { password: o.password } : {}),
    }),
  };
}

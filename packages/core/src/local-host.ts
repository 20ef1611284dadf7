import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import * as fs from "node:fs/promises";
import { connect as netConnect } from "node:net";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import type { Duplex } from "node:stream";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { quoteArg } from "./_utils";
import { tempBeside } from "./authoring";
import { errorReason, HostError } from "./errors";
import {
  type ConnectOptions,
  type ConnectTarget,
  connectTarget,
  type ExecOptions,
  type ExecResult,
  type FileStat,
  type Host,
  type UploadResult,
} from "./host";
import { acquireLease } from "./lease";

/** Options of `localHost`: its name and state directory. */
export interface LocalHostOptions {
  /** Directory for Atomkit's state on this machine (locks, trash, backups). Default `~/.atomkit`. */
  stateDir?: string;
  /** Default `local`. */
  name?: string;
}

/** Output kept per stream of `exec`; older output is dropped (a deploy command can be chatty). */
const MAX_OUTPUT = 4 * 1024 * 1024;

/** The machine Atomkit runs on. */
export function localHost(options: LocalHostOptions = {}): Host {
  const name = options.name ?? "local";
  const stateDir = options.stateDir ?? join(homedir(), ".atomkit");
  const wrap = <T>(op: string, path: string, promise: Promise<T>): Promise<T> =>
    promise.catch((error: unknown) => {
      throw hostError(name, op, path, error);
    });

  const host: Host = {
    name,
    stateDir,
    local: true,
    exec: (argv, opts) => exec(name, argv, opts),
    stat: (path) =>
      wrap(
        "stat",
        path,
        statOrNull(() => fs.stat(path)),
      ),
    lstat: (path) =>
      wrap(
        "lstat",
        path,
        statOrNull(() => fs.lstat(path)),
      ),
    readFile: (path) => wrap("readFile", path, fs.readFile(path)),
    async writeFile(path, data, opts = {}) {
      const tmp = tempBeside(path);
      try {
        await wrap("writeFile", path, writeSynced(tmp, data, "wx", opts.mode));
        // exclusive: link(2) fails with EEXIST when anything is at `path`, and never shows it partial
        if (opts.exclusive) await wrap("writeFile", path, fs.link(tmp, path));
        else await wrap("rename", path, fs.rename(tmp, path));
      } catch (error) {
        await fs.rm(tmp, { force: true }).catch(() => {}); // the error that matters is the one above
        throw error;
      }
      if (opts.exclusive) await fs.rm(tmp, { force: true });
      await syncDir(dirname(path));
    },
    readdir: (path) => wrap("readdir", path, fs.readdir(path)),
    mkdir: (path, opts = {}) =>
      wrap(
        "mkdir",
        path,
        fs.mkdir(path, { recursive: opts.recursive ?? false, mode: opts.mode }).then(() => {}),
      ),
    rm: (path, opts = {}) =>
      wrap("rm", path, fs.rm(path, { recursive: opts.recursive ?? false, force: opts.force ?? false })),
    rmdir: (path) => wrap("rmdir", path, fs.rmdir(path)),
    rename: (from, to) => wrap("rename", `${from} -> ${to}`, fs.rename(from, to)),
    symlink: (target, path) => wrap("symlink", path, fs.symlink(target, path)),
    readlink: (path) => wrap("readlink", path, fs.readlink(path)),
    realpath: (path) => wrap("realpath", path, fs.realpath(path)),
    chmod: (path, mode) => wrap("chmod", path, fs.chmod(path, mode)),
    hash: (path) => wrap("hash", path, hashFile(path)),
    upload: (localPath, path, opts = {}) =>
      wrap("upload", path, upload(localPath, path, opts.mode, opts.signal)),
    connect: async (target: ConnectTarget | number, opts: ConnectOptions & { hostname?: string } = {}) =>
      connectLocal(name, connectTarget(target, opts), opts.signal),
    lock: (lockName, opts) => acquireLease(host, lockName, opts),
    close: async () => {},
  };
  return host;
}

// --- Internal helpers ---

async function statOrNull(fn: () => Promise<import("node:fs").Stats>): Promise<FileStat | null> {
  try {
    const s = await fn();
    return {
      type: s.isFile() ? "file" : s.isDirectory() ? "directory" : s.isSymbolicLink() ? "symlink" : "other",
      size: s.size,
      mode: s.mode & 0o7777,
      mtimeMs: s.mtimeMs,
      uid: s.uid,
      gid: s.gid,
    };
  } catch (error) {
    if (errorReason(error) === "ENOENT" || errorReason(error) === "ENOTDIR") return null;
    throw error;
  }
}

async function writeSynced(path: string, data: string | Uint8Array, flag: string, mode?: number) {
  const fh = await fs.open(path, flag, mode ?? 0o644);
  try {
    await fh.writeFile(data);
    if (mode !== undefined) await fh.chmod(mode); // open()'s mode is filtered by the umask
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync the directory so the rename itself survives a power cut. */
async function syncDir(dir: string) {
  const fh = await fs.open(dir, "r").catch(() => null);
  try {
    await fh?.sync();
  } catch {
    // some filesystems refuse fsync on a directory; the rename is still atomic
  } finally {
    await fh?.close();
  }
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex");
}

async function upload(
  localPath: string,
  path: string,
  mode?: number,
  signal?: AbortSignal,
): Promise<UploadResult> {
  const hash = createHash("sha256");
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  const out = createWriteStream(path, { mode: mode ?? 0o644, flush: true });
  await pipeline(createReadStream(localPath), tap, out, signal ? { signal } : {});
  if (mode !== undefined) await fs.chmod(path, mode);
  return { sha256: hash.digest("hex"), bytes };
}

function connectLocal(
  host: string,
  target: { port: number; hostname: string } | { path: string },
  signal?: AbortSignal,
): Promise<Duplex> {
  const shown = "path" in target ? target.path : `${target.hostname}:${target.port}`;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const socket = netConnect(
      "path" in target ? { path: target.path } : { host: target.hostname, port: target.port },
    );
    // our own listener, removed once settled: a health check polls many times on one signal
    const onAbort = () =>
      socket.destroy(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", () => {
      signal?.removeEventListener("abort", onAbort);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (error) => {
      signal?.removeEventListener("abort", onAbort);
      reject(hostError(host, "connect", shown, error));
    });
  });
}

function exec(host: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const command = argv.map(quoteArg).join(" ");
  if (!argv.length || !argv[0]) {
    return Promise.reject(new HostError("OTHER", "exec needs a non-empty argv", { host, found: argv }));
  }
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: opts.cwd,
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdio: ["pipe", "pipe", "pipe"],
      signal: opts.signal,
      timeout: opts.timeoutMs,
      killSignal: "SIGKILL",
    });
    let stdout = "";
    let stderr = "";
    // decoded by the streams, so a multi-byte character split across chunks stays whole
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      stdout = (stdout + d).slice(-MAX_OUTPUT);
    });
    child.stderr.on("data", (d: string) => {
      stderr = (stderr + d).slice(-MAX_OUTPUT);
    });
    child.stdin.on("error", () => {}); // the program may exit without reading its input
    child.stdin.end(opts.input ?? "");
    child.once("error", (error) => {
      reject(
        new HostError(errorReason(error) ?? "OTHER", `cannot run \`${command}\`: ${error.message}`, {
          host,
          cause: error,
          hint:
            errorReason(error) === "ENOENT" ? `install ${argv[0]} on the host or fix the path` : undefined,
        }),
      );
    });
    child.once("close", (code, signal) => {
      const result: ExecResult = { code, signal, stdout, stderr };
      if ((code !== 0 || signal) && opts.reject !== false) {
        reject(execError(host, command, result));
      } else resolve(result);
    });
  });
}

export function execError(host: string, command: string, r: ExecResult): HostError {
  const tail = r.stderr.trim().split("\n").slice(-5).join("\n");
  return new HostError(
    "EXIT",
    `\`${command}\` ${r.signal ? `was killed by ${r.signal}` : `exited with code ${r.code}`}${tail ? `: ${tail}` : ""}`,
    {
      host,
      expected: "exit code 0",
      found: r.signal ?? `exit code ${r.code}`,
      exitCode: r.code ?? -1,
      stderr: r.stderr,
    },
  );
}

function hostError(host: string, op: string, path: string, error: unknown): HostError {
  if (error instanceof HostError) return error;
  const reason = errorReason(error) ?? "OTHER";
  const message = error instanceof Error ? error.message : String(error);
  return new HostError(reason, `${op} ${path} failed: ${message}`, { host, cause: error });
}

import { createHash } from "node:crypto";
import { posix } from "node:path";
import { type FileStat, type Host, HostError, type HostErrorReason } from "@atomkit/core";
import { shellQuote } from "@atomkit/core/kit";
import type { Attributes, SFTPWrapper } from "ssh2";
import type { Connection, Link } from "./_connection";
import { runCommand } from "./_exec";
import { linkOverExec } from "./_link";
import {
  call,
  hasExtension,
  lstatOrNull,
  reasonOfStatus,
  remoteCommand,
  SFTP_FAILURE,
  SFTP_NO_SUCH_FILE,
  sftpCode,
  toFileStat,
} from "./_utils";

/**
 * The Host's file operations over the connection's SFTP session, with SFTP's few status codes mapped to
 * the reasons localHost gives (SFTP says FAILURE for EEXIST, ENOTEMPTY, EISDIR…: the path is looked at
 * to name the real one). Writes are in `_sftp-write.ts`.
 */
export class Sftp {
  constructor(
    readonly conn: Connection,
    /** The host's own exec, for the few operations SFTP lacks (`link` without hardlink@openssh.com). */
    readonly exec: Host["exec"],
  ) {}

  get name(): string {
    return this.conn.s.name;
  }

  fail(reason: HostErrorReason, op: string, path: string, error: unknown, hint?: string): HostError {
    return new HostError(reason, `${op} ${path} failed: ${messageOf(error)}`, {
      host: this.name,
      cause: error,
      ...(hint ? { hint } : {}),
    });
  }

  /** One SFTP operation on the current link; its errors become HostErrors naming `op` and `path`. */
  async op<T>(op: string, path: string, fn: (sftp: SFTPWrapper, link: Link) => Promise<T>): Promise<T> {
    const link = await this.conn.get();
    try {
      return await fn(await this.conn.sftp(link), link);
    } catch (error) {
      throw this.toHostError(op, path, error, link);
    }
  }

  /** Throws the reason `reasons` names for what is at `path` now, else `error` as it is. */
  async explain(
    sftp: SFTPWrapper,
    op: string,
    path: string,
    error: unknown,
    reasons: (st: FileStat | null) => HostErrorReason | undefined,
  ): Promise<never> {
    const code = sftpCode(error);
    if (code === SFTP_FAILURE || code === SFTP_NO_SUCH_FILE) {
      const reason = reasons(await lstatOrNull(sftp, path).catch(() => null));
      if (reason) throw this.fail(reason, op, path, new Error(`${messageOf(error)} (${reason})`));
    }
    throw error;
  }

  stat(op: "stat" | "lstat", path: string): Promise<FileStat | null> {
    return this.op(op, path, async (sftp) => {
      try {
        return toFileStat(await call<Attributes>((cb) => sftp[op](path, cb)));
      } catch (error) {
        if (sftpCode(error) === SFTP_NO_SUCH_FILE) return null;
        throw error;
      }
    });
  }

  readFile(path: string): Promise<Buffer> {
    return this.op("readFile", path, async (sftp) => {
      try {
        return await call<Buffer>((cb) => sftp.readFile(path, cb));
      } catch (error) {
        // gone by now (e.g. /proc/<pid>/stat of a process that exited between open and read): ENOENT
        return this.explain(sftp, "readFile", path, error, (st) =>
          !st ? "ENOENT" : st.type === "directory" ? "EISDIR" : undefined,
        );
      }
    });
  }

  readdir(path: string): Promise<string[]> {
    return this.op("readdir", path, async (sftp) => {
      try {
        const list = await call<Array<{ filename: string }>>((cb) => sftp.readdir(path, cb));
        return list.map((e) => e.filename);
      } catch (error) {
        return this.explain(sftp, "readdir", path, error, (st) =>
          st && st.type !== "directory" ? "ENOTDIR" : undefined,
        );
      }
    });
  }

  mkdir(path: string, opts: { recursive?: boolean; mode?: number }): Promise<void> {
    return this.op("mkdir", path, async (sftp) => {
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
            if (st) throw this.fail("EEXIST", "mkdir", dir, error);
          }
          throw error;
        }
      };
      await make(path);
    });
  }

  rmdir(path: string): Promise<void> {
    return this.op("rmdir", path, async (sftp) => {
      try {
        await call((cb) => sftp.rmdir(path, cb));
      } catch (error) {
        // sftp-server answers FAILURE for ENOTEMPTY and ENOTDIR alike
        return this.explain(sftp, "rmdir", path, error, (st) =>
          !st ? "ENOENT" : st.type === "directory" ? "ENOTEMPTY" : "ENOTDIR",
        );
      }
    });
  }

  rm(path: string, opts: { recursive?: boolean; force?: boolean }): Promise<void> {
    return this.op("rm", path, async (sftp, link) => {
      const st = await lstatOrNull(sftp, path);
      if (!st) {
        if (opts.force) return;
        throw this.fail("ENOENT", "rm", path, new Error("No such file or directory"));
      }
      if (st.type !== "directory") {
        await call((cb) => sftp.unlink(path, cb));
        return;
      }
      if (!opts.recursive) {
        throw this.fail("EISDIR", "rm", path, new Error("Path is a directory"), "pass { recursive: true }");
      }
      // one `rm -rf` beats a round trip per entry over SFTP
      const command = remoteCommand(["rm", "-rf", "--", path]);
      const r = await this.conn.withChannel(() =>
        runCommand(this.conn, link, command, `rm -rf -- ${shellQuote(path)}`, "rm", { reject: false }),
      );
      if (r.code !== 0) {
        const reason = /Permission denied/.test(r.stderr) ? "EACCES" : "OTHER";
        throw this.fail(reason, "rm", path, new Error(r.stderr.trim()));
      }
    });
  }

  /** rename(2): `posix-rename@openssh.com` where offered (atomic, replaces `to`). */
  async renameOn(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
    try {
      if (hasExtension(sftp, "posix-rename@openssh.com")) {
        await call((cb) => sftp.ext_openssh_rename(from, to, cb));
      } else {
        // plain SFTP rename refuses an existing target: only atomic where posix-rename exists
        await call((cb) => sftp.rename(from, to, cb));
      }
    } catch (error) {
      if (sftpCode(error) !== SFTP_FAILURE) throw error;
      const shown = `${from} -> ${to}`;
      const [src, dst] = await Promise.all([lstatOrNull(sftp, from), lstatOrNull(sftp, to)]);
      if (!src) throw this.fail("ENOENT", "rename", shown, error);
      if (dst?.type === "directory") {
        throw this.fail(src.type === "directory" ? "ENOTEMPTY" : "EISDIR", "rename", shown, error);
      }
      if (dst && src.type === "directory") throw this.fail("ENOTDIR", "rename", shown, error);
      throw error;
    }
  }

  /** link(2) `from` to `to`: fails EEXIST when anything is at `to`, where a rename would replace it. */
  async linkInto(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
    if (!hasExtension(sftp, "hardlink@openssh.com")) {
      return linkOverExec({ exec: this.exec, name: this.name }, from, to);
    }
    try {
      await call((cb) => sftp.ext_openssh_hardlink(from, to, cb));
    } catch (error) {
      return this.explain(sftp, "writeFile", to, error, (st) => (st ? "EEXIST" : undefined));
    }
  }

  symlink(target: string, path: string): Promise<void> {
    return this.op("symlink", path, async (sftp) => {
      try {
        // ssh2 swaps the arguments for OpenSSH, whose server has them reversed
        await call((cb) => sftp.symlink(target, path, cb));
      } catch (error) {
        return this.explain(sftp, "symlink", path, error, (st) => (st ? "EEXIST" : undefined));
      }
    });
  }

  /** sha256 of a file: `sha256sum` on the host, else the bytes read here. */
  async hash(path: string): Promise<string> {
    const r = await this.exec(["sha256sum", "--", path], { reject: false }).catch((error: unknown) => {
      if (error instanceof HostError && error.reason === "ENOENT") return null; // no sha256sum there
      throw error;
    });
    if (r && r.code === 0) {
      const m = /^\\?([0-9a-f]{64})\b/.exec(r.stdout);
      if (m?.[1]) return m[1];
    }
    if (r && r.code !== 0) {
      const st = await this.stat("stat", path);
      const why = new Error(r.stderr.trim() || "No such file or directory");
      if (!st) throw this.fail("ENOENT", "hash", path, why);
      if (st.type === "directory") throw this.fail("EISDIR", "hash", path, why);
      if (/Permission denied/.test(r.stderr)) throw this.fail("EACCES", "hash", path, why);
    }
    // no usable sha256sum on the host: hash the bytes here
    return createHash("sha256")
      .update(await this.readFile(path))
      .digest("hex");
  }

  private toHostError(op: string, path: string, error: unknown, link: Link): HostError {
    if (error instanceof HostError) return error;
    const code = sftpCode(error);
    if (code !== undefined && code >= 1 && code <= 8 && code !== 6 && code !== 7) {
      return this.fail(reasonOfStatus(code), op, path, error);
    }
    if (this.conn.isLinkFailure(error, link)) return this.conn.linkError(`${op} ${path}`, error, link);
    return this.fail("OTHER", op, path, error);
  }
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function isDirectory(sftp: SFTPWrapper, path: string): Promise<boolean> {
  try {
    return toFileStat(await call<Attributes>((cb) => sftp.stat(path, cb))).type === "directory";
  } catch {
    return false;
  }
}

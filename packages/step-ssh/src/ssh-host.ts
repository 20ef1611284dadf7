import type { ConnectOptions, ConnectTarget } from "@atomkit/core";
import { acquireLease } from "@atomkit/core/kit";
import { Connection } from "./_connection";
import { exec } from "./_exec";
import { forward } from "./_forward";
import { resolveOptions, type SshHost, type SshHostOptions } from "./_options";
import { Sftp } from "./_sftp";
import { upload, writeFile } from "./_sftp-write";
import { call } from "./_utils";

export type { HostKeyPolicy } from "./_connection";
export type { SshHost, SshHostOptions } from "./_options";

/**
 * A Host on a remote machine over SSH (ssh2): one connection per host shared by every step, with exec
 * channels, one SFTP session and forwarded streams multiplexed over it, keep-alive, and a bounded
 * reconnect on the next call after a drop. Host keys are verified against known_hosts unless told
 * otherwise.
 *
 * The parts: `_options` (options → connection settings), `_connection` (the link, its host key and
 * reconnects), `_exec` (commands; their states in `_exec-run`), `_sftp`/`_sftp-write` (files, with
 * SFTP's errors mapped to localHost's reasons) and `_forward` (streams to ports and unix sockets).
 */
export function sshHost(options: SshHostOptions): SshHost {
  const settings = resolveOptions(options);
  const { name } = settings;
  const conn = new Connection(settings);

  let stateDir = options.stateDir ?? ".atomkit";
  if (!options.stateDir) {
    conn.onLink = async (link) => {
      if (stateDir.startsWith("/")) return;
      const sftp = await conn.sftp(link);
      const home = await call<string>((cb) => sftp.realpath(".", cb)).catch(() => "");
      stateDir =
        home && home !== "/" ? `${home.replace(/\/+$/, "")}/.atomkit` : `/tmp/atomkit-${settings.username}`;
    };
  }

  const files = new Sftp(conn, (argv, opts) => exec(conn, argv, opts));

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

    exec: (argv, opts) => exec(conn, argv, opts),

    // read-only: retried once on a new link when the link drops under them
    stat: (path) => readOnly(() => files.stat("stat", path)),
    lstat: (path) => readOnly(() => files.stat("lstat", path)),
    readFile: (path) => readOnly(() => files.readFile(path)),
    hash: (path) => readOnly(() => files.hash(path)),
    readdir: (path) => readOnly(() => files.readdir(path)),
    readlink: (path) =>
      readOnly(() => files.op("readlink", path, (sftp) => call<string>((cb) => sftp.readlink(path, cb)))),
    // SFTP's REALPATH (OpenSSH resolves symlinks, as realpath(3)): no exec session for `pwd -P`
    realpath: (path) =>
      readOnly(() => files.op("realpath", path, (sftp) => call<string>((cb) => sftp.realpath(path, cb)))),

    writeFile: (path, data, opts) => writeFile(files, path, data, opts),
    upload: (localPath, path, opts) => upload(files, localPath, path, opts),
    mkdir: (path, opts = {}) => files.mkdir(path, opts),
    rm: (path, opts = {}) => files.rm(path, opts),
    rmdir: (path) => files.rmdir(path),
    rename: (from, to) => files.op("rename", `${from} -> ${to}`, (sftp) => files.renameOn(sftp, from, to)),
    symlink: (target, path) => files.symlink(target, path),
    chmod: (path, mode) => files.op("chmod", path, (sftp) => call((cb) => sftp.chmod(path, mode, cb))),

    connect: (target: ConnectTarget | number, opts?: ConnectOptions & { hostname?: string }) =>
      forward(conn, target, opts),

    async lock(lockName, opts) {
      await conn.get(); // stateDir is absolute from here on
      return acquireLease(host, lockName, opts);
    },

    close: () => conn.close(),
  };
  return host;
}

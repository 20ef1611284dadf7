import { type ExecOptions, type ExecResult, HostError } from "@atomkit/core";
import { execError, shellQuote } from "@atomkit/core/kit";
import type { ClientChannel } from "ssh2";
import type { Connection, Link } from "./_connection";
import { type ExecOutcome, ExecRun } from "./_exec-run";
import { shellOf } from "./_shell";
import { remoteCommand } from "./_utils";

/** Output kept per stream of `exec`, as localHost keeps. */
const MAX_OUTPUT = 4 * 1024 * 1024;
/** How long a killed command's channel may linger before it is closed from our side. */
const CLOSE_GRACE_MS = 5_000;

/** Host.exec over SSH: the argv checked and quoted, run on a channel slot of the host's connection. */
export async function exec(
  conn: Connection,
  argv: readonly string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  const host = conn.s.name;
  if (!argv.length || !argv[0]) {
    throw new HostError("OTHER", "exec needs a non-empty argv", { host, found: argv });
  }
  if (argv[0].startsWith("-")) {
    throw new HostError("OTHER", `cannot run a program named ${JSON.stringify(argv[0])}`, {
      host,
      hint: "a program name may not start with '-'; use ./-name",
    });
  }
  const shown = argv.map(shellQuote).join(" ");
  let command: string;
  try {
    command = remoteCommand(argv, opts);
  } catch (error) {
    throw new HostError("OTHER", `cannot run \`${shown}\`: ${(error as Error).message}`, {
      host,
      cause: error,
    });
  }
  if (opts.signal?.aborted) {
    throw new HostError("OTHER", `\`${shown}\` was aborted`, { host, cause: opts.signal.reason });
  }
  const program = argv[0];
  return conn.withChannel(async () => runCommand(conn, await conn.get(), command, shown, program, opts));
}

/**
 * Runs `command` (from `remoteCommand`) on `link`: in the link's command shell when it has no input and
 * the shell is free (no session to start), else on an exec channel of its own.
 */
export async function runCommand(
  conn: Connection,
  link: Link,
  command: string,
  shown: string,
  program: string,
  opts: ExecOptions,
): Promise<ExecResult> {
  if (opts.input === undefined) {
    let unwatch = () => {};
    const run = await shellOf(link, (pid) => killGroup(link, pid)).run(command, ({ closeSoon }) => {
      const r = new ExecRun(
        {
          // the shell is not the command's: only the command's process group is killed
          kill: (pid) => {
            if (pid !== undefined) killGroup(link, pid);
          },
          closeSoon,
        },
        MAX_OUTPUT,
      );
      unwatch = stopOn(r, opts);
      return r;
    });
    unwatch();
    if (run) return settle(conn, link, run.close(), shown, program, opts);
  }
  return execOnce(conn, link, command, shown, program, opts);
}

/** Stops `run` at `opts.timeoutMs` or when `opts.signal` aborts; returns what undoes the watch. */
function stopOn(run: ExecRun, opts: ExecOptions): () => void {
  const onAbort = () => run.stop("abort");
  const timer =
    opts.timeoutMs !== undefined ? setTimeout(() => run.stop("timeout"), opts.timeoutMs) : undefined;
  if (opts.signal) {
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener("abort", onAbort, { once: true });
  }
  return () => {
    if (timer) clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
  };
}

/** The result of a command from how it ended, or the error to throw (as `localHost` would). */
function settle(
  conn: Connection,
  link: Link,
  outcome: ExecOutcome,
  shown: string,
  program: string,
  opts: ExecOptions,
): ExecResult {
  const name = conn.s.name;
  switch (outcome.type) {
    case "aborted":
      throw new HostError("OTHER", `\`${shown}\` was aborted`, { host: name, cause: opts.signal?.reason });
    case "no-exit":
      throw conn.isLinkFailure(new Error("channel closed"), link)
        ? conn.linkError(`exec \`${shown}\``, new Error("channel closed without an exit status"), link)
        : new HostError("OTHER", `\`${shown}\` ended without an exit status`, { host: name });
    case "not-found":
      // the same ENOENT localHost throws
      throw new HostError("ENOENT", `cannot run \`${shown}\`: ${outcome.result.stderr.trim()}`, {
        host: name,
        exitCode: 127,
        stderr: outcome.result.stderr,
        hint: `install ${program} on the host or fix the path`,
      });
    case "exited": {
      const r = outcome.result;
      if ((r.code !== 0 || r.signal) && opts.reject !== false) throw execError(name, shown, r);
      return r;
    }
  }
}

/**
 * Runs `command` (from `remoteCommand`) on one exec channel of `link`: stdin from `input`, output kept,
 * `timeoutMs` and `signal` kill the remote process group. `shown` names the command in errors.
 */
export function execOnce(
  conn: Connection,
  link: Link,
  command: string,
  shown: string,
  program: string,
  opts: ExecOptions,
): Promise<ExecResult> {
  const name = conn.s.name;
  return new Promise<ExecResult>((resolve, reject) => {
    link.client.exec(command, (err, channel) => {
      if (err) {
        reject(
          conn.isLinkFailure(err, link)
            ? conn.linkError(`exec \`${shown}\``, err, link)
            : new HostError("OTHER", `cannot run \`${shown}\`: ${err.message}`, { host: name, cause: err }),
        );
        return;
      }
      let closeTimer: NodeJS.Timeout | undefined;
      let unwatch = () => {};
      const run = new ExecRun(
        {
          // OpenSSH refuses signal requests in some setups (e.g. as root: "session signalling requires
          // privilege separation"), so kill the process group from a second channel as well
          kill: (pid) => {
            killChannel(channel);
            if (pid !== undefined && run.phase !== "closed") killGroup(link, pid);
          },
          closeSoon: () => {
            closeTimer = setTimeout(() => channel.close(), CLOSE_GRACE_MS);
          },
        },
        MAX_OUTPUT,
      );
      channel.on("data", (d: Buffer) => run.stdoutData(d));
      channel.stderr.on("data", (d: Buffer) => run.stderrData(d));
      channel.on("error", () => {});
      channel.on("exit", (code: number | null, signal?: string) => {
        run.exited(typeof code === "number" ? code : null, signal ?? null);
      });
      channel.on("close", () => {
        unwatch();
        if (closeTimer) clearTimeout(closeTimer);
        try {
          resolve(settle(conn, link, run.close(), shown, program, opts));
        } catch (error) {
          reject(error);
        }
      });
      const input = opts.input;
      // a view, not a copy (Buffer.from(uint8array) copies): an archive streamed in may be large
      channel.end(
        input === undefined || typeof input === "string" || Buffer.isBuffer(input)
          ? input
          : Buffer.from(input.buffer, input.byteOffset, input.byteLength),
      );
      unwatch = stopOn(run, opts);
    });
  });
}

/** `kill -KILL -<pgid>` on a channel of its own; best effort (the link may be gone). */
function killGroup(link: Link, pid: number): void {
  if (link.closed) return;
  try {
    // the group, and the pid itself for a command not made a session leader (a host without setsid)
    link.client.exec(remoteCommand(["kill", "-s", "KILL", "--", `-${pid}`, String(pid)]), (err, channel) => {
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

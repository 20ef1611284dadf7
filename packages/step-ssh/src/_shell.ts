import { randomBytes } from "node:crypto";
import { shellQuote } from "@atomkit/core/kit";
import type { ClientChannel } from "ssh2";
import type { Link } from "./_connection";
import type { ExecEffects, ExecRun } from "./_exec-run";

// One long-lived `/bin/sh` per connection that runs commands one after another. On an SSH host every
// exec request is a session of its own: sshd starts the user's login shell, and that shell's startup
// files (an nvm or pyenv set-up in ~/.bashrc, which Debian's bash reads for every ssh command) run each
// time: ~100 ms of CPU per command on this project's test machine, against ~10 ms with a plain shell.
// A release's stop, start, rollback and cleanup are short commands with no input: through this shell
// they cost that set-up once per connection. A command with stdin input, or one that finds the shell
// busy, still gets a session of its own.
//
// Each command runs in a child of the shell, in a new session (`setsid`, where the host has it), so a
// timeout kills its whole process group as before. Its end is two marker lines, one on stdout (with
// the exit status, and the signal's name as the host spells it) and one on stderr, each with a nonce no
// output can guess. Output while no command runs (a daemon a command left holding the shell's stdout)
// ends the shell: the next command gets a new one, never that output.

/** How the shell runs each command: a child with no stdin, in its own session where setsid exists. */
const SHELL_SETUP = "if command -v setsid >/dev/null 2>&1; then S=setsid; else S=; fi";

/** How long the login shell may take to hand over to the command shell before a session is used instead. */
const OPEN_DEADLINE_MS = 30_000;

const MARK = "\x1eatomkit-done ";

/** Called with each piece of a stream before its marker, then once with what followed the marker. */
class MarkerScan {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;

  constructor(
    private readonly marker: Buffer,
    private readonly onData: (data: Buffer) => void,
    /** Bytes after the marker up to the next newline (the exit status on stdout; nothing on stderr). */
    private readonly onMarker: (rest: string) => void,
  ) {}

  /** Where a suffix of the buffer that is a prefix of the marker starts (the length when none). */
  private partialMarkerAt(): number {
    const from = Math.max(0, this.buf.length - this.marker.length + 1);
    for (
      let i = this.buf.indexOf(this.marker[0]!, from);
      i !== -1;
      i = this.buf.indexOf(this.marker[0]!, i + 1)
    ) {
      const tail = this.buf.subarray(i);
      if (this.marker.subarray(0, tail.length).equals(tail)) return i;
    }
    return this.buf.length;
  }

  push(data: Buffer): void {
    if (this.done) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    const at = this.buf.indexOf(this.marker);
    if (at === -1) {
      // hold back only a tail that could be the start of a marker cut in two by the transport: the
      // rest goes on at once (the pid line must reach ExecRun before the command ends)
      const keep = this.partialMarkerAt();
      if (keep > 0) this.onData(this.buf.subarray(0, keep));
      this.buf = this.buf.subarray(keep);
      return;
    }
    const nl = this.buf.indexOf(10, at + this.marker.length);
    if (nl === -1) return; // the marker's line is not complete yet
    if (at > 0) this.onData(this.buf.subarray(0, at));
    this.done = true;
    const rest = this.buf.subarray(at + this.marker.length, nl).toString("latin1");
    this.buf = Buffer.alloc(0);
    this.onMarker(rest);
  }
}

/**
 * The exit from the stdout marker's "<status> <signal name>": 128 + n is how a shell reports a child
 * killed by signal n, and the host names n itself (`kill -l`), as numbers differ between systems.
 */
function exitOf(rest: string): { code: number | null; signal: string | null } | undefined {
  const m = /^(\d+) ?([A-Z0-9+-]*)$/.exec(rest);
  if (!m) return undefined;
  const status = Number(m[1]);
  if (status > 128 && m[2]) return { code: null, signal: m[2].startsWith("SIG") ? m[2] : `SIG${m[2]}` };
  return { code: status, signal: null };
}

/** The command in the shell; its parts are set once the shell is open (stray output before is dropped). */
interface Job {
  run?: ExecRun;
  out?: MarkerScan;
  err?: MarkerScan;
  finish?: () => void;
  /** Its exit status came back (the stdout marker): the process is gone, its pid no longer ours to kill. */
  exited?: boolean;
}

/**
 * The command shell of one link. `run` hands a command to it and resolves when both markers came back
 * (or the shell died); it returns undefined when the shell is busy or cannot start, and the caller opens
 * a session of its own.
 */
export class CommandShell {
  private channel: Promise<ClientChannel> | undefined;
  private job: Job | undefined;
  private dead = false;

  constructor(
    private readonly link: Link,
    /** Kills a command's process group from a session of its own. */
    private readonly kill: (pid: number) => void,
  ) {}

  /** Gone for good (refused, closed, killed): the link needs a new one. */
  get gone(): boolean {
    return this.dead || this.link.closed;
  }

  /**
   * Opens the shell's session once, and resolves when it said it is ready, on stdout and on stderr:
   * whatever the login shell's startup files printed comes before that and is dropped, not taken for a
   * command's output. The ready lines come from the command sshd runs after those files, so nothing is
   * written to the shell's stdin before (a startup file that reads stdin would swallow it). Rejects (the
   * shell is dead) when the server refuses it, it ends first, or it is not ready within the deadline.
   */
  private open(): Promise<ClientChannel> {
    this.channel ??= new Promise<ClientChannel>((resolve, reject) => {
      const nonce = randomBytes(12).toString("hex");
      const ready = `${MARK}ready ${nonce}`;
      const script = `${SHELL_SETUP}; export S; printf '%s\\n' '${ready}'; printf '%s\\n' '${ready}' >&2; exec /bin/sh`;
      // `exec` replaces the login shell: its startup files ran once, for this session
      this.link.client.exec(`exec /bin/sh -c ${shellQuote(script)}`, (err, ch) => {
        if (err) return reject(err);
        let waiting = 2;
        const deadline = setTimeout(() => {
          reject(new Error(`the command shell was not ready within ${OPEN_DEADLINE_MS} ms`));
          this.dead = true;
          ch.close();
        }, OPEN_DEADLINE_MS);
        const isReady = () => {
          if (--waiting > 0) return;
          clearTimeout(deadline);
          resolve(ch);
        };
        const stray = () => {
          // output with no command to own it: a process a command left holding the shell's stdout
          if (waiting === 0) this.destroy();
        };
        // each stream: its ready line first (what came before it is the login shell's, dropped), then
        // the running command's output, and anything else is stray
        const stream = (which: "out" | "err") => {
          let starting: MarkerScan | undefined = new MarkerScan(
            Buffer.from(ready),
            () => {},
            () => {
              starting = undefined;
              isReady();
            },
          );
          return (d: Buffer) => {
            const job = this.job?.[which];
            if (starting) starting.push(d);
            else if (job) job.push(d);
            else stray();
          };
        };
        ch.on("data", stream("out"));
        ch.stderr.on("data", stream("err"));
        ch.on("error", () => {});
        // the shell itself ended (killed on the host, or the session was): a command it still ran is
        // an orphan now, killed with its group, and ends with no exit status
        const gone = () => {
          this.dead = true;
          clearTimeout(deadline);
          if (waiting > 0) reject(new Error("the command shell ended before it was ready"));
          ch.close();
          const job = this.job;
          if (job?.finish) {
            if (job.run?.pid !== undefined && !job.exited) this.kill(job.run.pid);
            job.finish();
          }
        };
        ch.on("exit", gone);
        ch.on("close", gone);
      });
    });
    this.channel.catch(() => {
      this.dead = true;
    });
    return this.channel;
  }

  /** Kills the shell (and with it the session); a command running in it ends without an exit status. */
  destroy(): void {
    this.dead = true;
    void this.channel?.then((ch) => ch.close()).catch(() => {});
  }

  /**
   * Runs `command` (from `remoteCommand`) in the shell, feeding `run` as a channel of its own would.
   * Resolves once the command ended (or the shell died: `run.close()` then says no exit status).
   * Undefined when the shell is busy, dead or cannot start: open a session instead.
   */
  async run(
    command: string,
    makeRun: (effects: Pick<ExecEffects, "closeSoon">) => ExecRun,
  ): Promise<ExecRun | undefined> {
    if (this.gone || this.job || command.includes("\0")) return undefined;
    const job: Job = {};
    this.job = job; // taken before the first await: a second caller finds the shell busy
    let channel: ClientChannel;
    try {
      channel = await this.open();
    } catch {
      this.job = undefined;
      return undefined;
    }
    if (this.dead) {
      this.job = undefined;
      return undefined;
    }
    let closeTimer: NodeJS.Timeout | undefined;
    // a killed command that does not end lets the shell go with it: the next command starts another
    const run = makeRun({ closeSoon: () => (closeTimer = setTimeout(() => this.destroy(), 5_000)) });
    job.run = run;
    const nonce = randomBytes(12).toString("hex");
    let errDone = false;
    return new Promise<ExecRun>((resolve) => {
      job.finish = () => {
        if (closeTimer) clearTimeout(closeTimer);
        if (this.job === job) this.job = undefined;
        resolve(run);
      };
      const ended = () => {
        if (job.exited && errDone) job.finish?.();
      };
      job.out = new MarkerScan(
        Buffer.from(`${MARK}${nonce} `),
        (d) => run.stdoutData(d),
        (rest) => {
          const exit = exitOf(rest);
          if (exit) run.exited(exit.code, exit.signal);
          job.exited = true;
          ended();
        },
      );
      job.err = new MarkerScan(
        Buffer.from(`${MARK}${nonce}`),
        (d) => run.stderrData(d),
        () => {
          errDone = true;
          ended();
        },
      );
      // aborted while it waited for the shell: never started at all
      if (run.phase !== "running") return job.finish();
      // One line for the shell: the command is one quoted word (newlines and all), run with no stdin;
      // the markers follow whatever it printed, even output without a final newline.
      channel.write(
        `$S /bin/sh -c ${shellQuote(command)} </dev/null; s=$?; n=; if [ "$s" -gt 128 ]; then n=$(kill -l "$s" 2>/dev/null); fi; printf '${MARK}%s %s %s\\n' ${nonce} "$s" "$n"; printf '${MARK}%s\\n' ${nonce} >&2\n`,
      );
    });
  }
}

const shells = new WeakMap<Link, CommandShell>();

/** The command shell of `link` (a new one when the last died). */
export function shellOf(link: Link, kill: (pid: number) => void): CommandShell {
  let shell = shells.get(link);
  if (!shell || shell.gone) {
    shell = new CommandShell(link, kill);
    shells.set(link, shell);
  }
  return shell;
}

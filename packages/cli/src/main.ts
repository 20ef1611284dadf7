import { type ParseArgsConfig, parseArgs } from "node:util";
import { AtomError, isAtomError, type ParamsError } from "@atomkit/core";
import { closest } from "@atomkit/core/kit";
import { Context, type Flags, type Io } from "./context";
import { EXIT, exitCodeOf } from "./exit-codes";

declare const __VERSION__: string | undefined;
const VERSION = typeof __VERSION__ === "string" ? __VERSION__ : "0.0.0";

export const HELP = `atomkit — run deploys as atoms: every step undone and verified on failure

usage:
  atomkit init [--local | --ssh user@host[:port] | --docker]
                                            a deploy file and a stand-in app that deploy at once;
                                            adds .atomkit/ to .gitignore
  atomkit run <atom> [--host h ...] [--var k=v ...] [--dry-run] [--json] [--force]
                     [--batch 1,25%,100%] [--concurrency n] [--max-failures n]
                     [--on-failure rollback-all|rollback-host|halt]
                                            one host: a run; several: one fleet run (its own id)
  atomkit plan <atom> [--host h ...] [--var k=v ...]
                                            observe every step read-only; nothing changes
  atomkit rollback [<atom>] [--host h ...] [--to <runId|fleetId> | --steps n]
                                            the previous release (or the one named) serves again,
                                            every undo verified; on every selected host at once
  atomkit undo <runId|fleetId>              roll back a committed run (all hosts of a fleet run)
  atomkit recover [runId|fleetId] [--rollback-committed]
                                            finish runs whose process died; named, also finish a
                                            rollback that stopped (rollback-failed) once fixed
  atomkit status [--host h ...] [--history] what serves on each host: atom, vars, when, by whom,
                                            and whether the host still holds it
  atomkit list                              the deploy file's atoms, their vars, and its hosts
  atomkit trail [runId|fleetId] [--host h ...] [--json]
                                            list runs (of those hosts), or show one run's (or
                                            fleet's) steps
  atomkit report [<runId|fleetId> | --last] [-o file]
                                            one HTML file: outcome, timeline across hosts, every
                                            step's before → after, undo and verify (no host contacted)
  atomkit report --history [--host h ...]   runs over time per host, what is live, undo links
  atomkit trail prune [--keep n] [--older-than 90d] [--dry-run]
                                            forget old runs: never a live release, an unfinished or
                                            rollback-failed run, nor a run without its undo
  atomkit unlock <host> [--yes]             show who holds the host lock; remove it with --yes
  atomkit store migrate                     bring a database trail's schema up to date
                                            (ATOMKIT_TRAIL_URL=postgres://…, or the config's trail)

options:
  --config <file>   deploy file (default: atomkit.config.{ts,mts,js,mjs,cjs} here or in a parent)
  --trail <dir>     trail directory (default: ATOMKIT_TRAIL_URL, the config's trail, or .atomkit/trails
                    next to the deploy file)
  --var k=v         a var of the atom (\`atomkit list\` shows declared ones); undo, rollback and
                    recover take secret vars again this way (they never reach the trail)
  --force           undo/rollback/recover through drift (a state neither left by the run nor before it)
  --allow-later-runs  undo/recover although later runs left changes on the host
  --lock <name>     host lock name (default: deploy)    --break-stale   take over a stale lock
  --version, --help

exit codes: 0 ok · 2 invalid input · 3 rolled back · 4 rollback failed · 5 locked or unfinished run
            6 drift or later runs · 7 host unreachable · 8 host key or credentials refused
            9 trail cannot be trusted or written · 130 stopped
Ctrl-C once: abort and roll back. Twice: stop at once, leaving the trail for \`atomkit recover\`.`;

export async function main(argv: string[], io: Io, installSignals = true): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    io.stderr.write(`${flagError(error as Error, argv)}\n`);
    return EXIT.invalid;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    io.stdout.write(`${VERSION}\n`);
    return EXIT.ok;
  }
  if (values.help || !positionals.length || positionals[0] === "help") {
    io.stdout.write(`${HELP}\n`);
    return values.help || positionals[0] === "help" ? EXIT.ok : EXIT.invalid;
  }
  const badVar = values.var.find((v) => !/^[^=]+=/.test(v));
  if (badVar !== undefined) {
    io.stderr.write(`--var needs key=value; found "${badVar.split("=")[0]}"\n`);
    return EXIT.invalid;
  }
  const [command, arg] = positionals;
  const ac = new AbortController();
  const dispose = installSignals ? onInterrupt(ac, io) : () => {};
  const ctx = new Context(values as unknown as Flags, io, ac.signal);
  try {
    const need = (what: string) => {
      if (!arg)
        throw new AtomError("ATOM_PARAMS_INVALID", `\`atomkit ${command}\` needs ${what}`, {
          hint: `atomkit ${command} <${what}>`,
        });
      return arg;
    };
    // each command's module is loaded when it runs (the report's HTML, init's templates are not
    // everyone's start-up cost)
    switch (command) {
      case "init":
        return await (await import("./commands/init")).initCommand(ctx);
      case "run":
        return await (await import("./commands/run")).runCommand(ctx, need("atom"));
      case "plan":
        return await (await import("./commands/plan")).planCommand(ctx, need("atom"));
      case "undo":
        return await (await import("./commands/undo")).undoCommand(ctx, need("runId"));
      case "rollback":
        return await (await import("./commands/rollback")).rollbackCommand(ctx, arg);
      case "recover":
        return await (await import("./commands/undo")).recoverCommand(ctx, arg);
      case "status":
        return await (await import("./commands/status")).statusCommand(ctx);
      case "list":
        return await (await import("./commands/list")).listCommand(ctx);
      case "trail":
        return arg === "prune"
          ? await (await import("./commands/prune")).pruneCommand(ctx)
          : await (await import("./commands/trail")).trailCommand(ctx, arg);
      case "report":
        return await (await import("./commands/report")).reportCommand(ctx, arg);
      case "unlock":
        return await (await import("./commands/unlock")).unlockCommand(ctx, need("host"));
      case "store":
        return await (await import("./commands/store")).storeCommand(ctx, need("action"));
      default:
        io.stderr.write(`unknown command "${command}"\n\n${HELP}\n`);
        return EXIT.invalid;
    }
  } catch (error) {
    ctx.renderer.done();
    printError(io, error);
    // a --json consumer gets the failure on its stream too, not only an exit code
    if (values.json)
      io.stdout.write(
        `${JSON.stringify({ type: "error", at: new Date().toISOString(), error: errorJson(error) })}\n`,
      );
    return exitCodeOf(error);
  } finally {
    dispose();
    await ctx.close();
  }
}

/**
 * One line on what is wrong with the flags (node's own wording is long and suggests `--`), a guess at
 * the flag meant, and the usage of the command given, not the whole help.
 */
function flagError(error: Error, argv: string[]): string {
  const unknown = /Unknown option '(-{1,2}[^']+)'/.exec(error.message)?.[1];
  const first = error.message.split(/\. |\n/)[0];
  const command = argv.find((a) => !a.startsWith("-"));
  const usage = command ? usageOf(command) : undefined;
  let line = first ?? "invalid option";
  if (unknown) {
    const guess = closest(unknown.replace(/^-+/, ""), Object.keys(OPTIONS));
    line = `unknown option ${unknown}${guess ? `; did you mean --${guess}?` : ""}`;
  }
  return `${line}\n${usage ? `usage:\n${usage}` : "see: atomkit --help"}`;
}

/** The usage lines of one command, cut from HELP (so the two never disagree). */
export function usageOf(command: string): string | undefined {
  const lines = HELP.split("\n");
  const at = lines.findIndex((l) => l.startsWith(`  atomkit ${command}`) && /^ {2}atomkit \S+/.test(l));
  if (at < 0) return undefined;
  const out = [lines[at]!];
  for (const l of lines.slice(at + 1)) {
    if (!l.startsWith("    ")) break;
    out.push(l);
  }
  return out.join("\n");
}

const OPTIONS = {
  config: { type: "string", short: "c" },
  host: { type: "string", short: "H", multiple: true, default: [] as string[] },
  var: { type: "string", multiple: true, default: [] as string[] },
  json: { type: "boolean", default: false },
  "dry-run": { type: "boolean", default: false },
  force: { type: "boolean", default: false },
  "allow-later-runs": { type: "boolean", default: false },
  history: { type: "boolean", default: false },
  last: { type: "boolean", default: false },
  keep: { type: "string" },
  "older-than": { type: "string" },
  local: { type: "boolean", default: false },
  docker: { type: "boolean", default: false },
  ssh: { type: "string" },
  output: { type: "string", short: "o" },
  to: { type: "string" },
  steps: { type: "string" },
  "break-stale": { type: "boolean", default: false },
  "rollback-committed": { type: "boolean", default: false },
  yes: { type: "boolean", short: "y", default: false },
  batch: { type: "string" },
  "max-failures": { type: "string" },
  "on-failure": { type: "string" },
  concurrency: { type: "string" },
  trail: { type: "string" },
  lock: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
  version: { type: "boolean", short: "v", default: false },
} satisfies ParseArgsConfig["options"];

function parse(argv: string[]) {
  return parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
}

/** First Ctrl-C (or SIGTERM): abort and roll back. Second: stop at once; the trail is left for recover. */
function onInterrupt(ac: AbortController, io: Io): () => void {
  let count = 0;
  const handler = (signal: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      io.stderr.write(`\n${signal}: aborting the current step and rolling back (again to stop at once)\n`);
      ac.abort(new AtomError("ATOM_ABORTED", `interrupted by ${signal}`));
      return;
    }
    io.stderr.write(`\n${signal} again: stopping now; run \`atomkit recover\` to finish the rollback\n`);
    process.exit(EXIT.interrupted);
  };
  // SIGHUP: the terminal or SSH session running the deploy went away; roll back like Ctrl-C
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.on(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
  };
}

function errorJson(error: unknown) {
  if (!isAtomError(error)) return { message: error instanceof Error ? error.message : String(error) };
  return {
    code: error.code,
    message: error.shortMessage,
    step: error.step,
    host: error.host,
    hint: error.hint,
    // every invalid field, for a tool to point at: step, kind, path, message
    ...(error.code === "ATOM_PARAMS_INVALID" && Array.isArray((error as ParamsError).issues)
      ? { issues: (error as ParamsError).issues }
      : {}),
  };
}

function printError(io: Io, error: unknown): void {
  if (isAtomError(error)) {
    io.stderr.write(`\n✗ ${error.message}\n`);
    if (io.env.ATOMKIT_DEBUG) io.stderr.write(`${error.stack}\n`);
    return;
  }
  io.stderr.write(
    `\n✗ unexpected error: ${error instanceof Error ? (io.env.ATOMKIT_DEBUG ? error.stack : error.message) : String(error)}\n`,
  );
}

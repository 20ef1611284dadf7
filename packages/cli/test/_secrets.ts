import { spawn } from "node:child_process";
import { lstat, readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { BIN, type Cli } from "./_project";

/** Every form a message could quote a secret in: as is, JSON-escaped (once, twice), URL-encoded, shell-quoted. */
export function formsOf(secret: string): string[] {
  const json = JSON.stringify(secret).slice(1, -1);
  const json2 = JSON.stringify(json).slice(1, -1);
  const url = encodeURIComponent(secret);
  return [
    ...new Set([
      secret,
      json,
      json2,
      url,
      url.replace(/%20/g, "+"),
      secret.replace(/'/g, `'\\''`),
      Buffer.from(secret).toString("base64"),
    ]),
  ];
}

const ISO_TIME = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z?/g;
const RUN_ID = /\d{8}T\d{6}(?:\d{3})?Z-[0-9a-f]{6}/g;
// numbers that are evidence or timing, never a value a step was given
const NUMERIC_FIELDS = /"(?:durationMs|undoDurationMs|pid|ppid|startTime|attempts|attempt|size|v)":\d+/g;

/**
 * Occurrences of a secret in `text`, in any of its forms. A short (< 4) or all-digit secret counts only
 * where it stands whole (not inside a longer word or number: a hex digest holds `ab1`, a pid `2026`),
 * after removing timestamps and run ids, which legitimately hold a year like `2026`.
 */
export function occurrences(text: string, secret: string): number {
  const whole = secret.length < 4 || /^\d+$/.test(secret);
  const cleaned = whole ? text.replace(ISO_TIME, "").replace(RUN_ID, "").replace(NUMERIC_FIELDS, "") : text;
  let n = 0;
  for (const form of formsOf(secret)) {
    if (!form) continue;
    if (whole) {
      const re = new RegExp(
        `(?<![A-Za-z0-9])${form.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![A-Za-z0-9])`,
        "g",
      );
      n += cleaned.match(re)?.length ?? 0;
    } else n += cleaned.split(form).length - 1;
  }
  return n;
}

/** Every regular file under `dir` (symlinks not followed), by path relative to it. */
export async function filesUnder(dir: string, skip: (rel: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  const walk = async (abs: string) => {
    for (const name of await readdir(abs).catch(() => [] as string[])) {
      const path = join(abs, name);
      const rel = relative(dir, path);
      if (skip(rel)) continue;
      const st = await lstat(path).catch(() => null);
      if (st?.isDirectory()) await walk(path);
      else if (st?.isFile()) out.push(path);
    }
  };
  await walk(dir);
  return out;
}

/** Where a secret was found: `sink` names the command's stream or the file. */
export interface Leak {
  secret: string;
  sink: string;
  count: number;
  around: string;
}

export function leaksIn(sink: string, text: string, secrets: readonly string[]): Leak[] {
  const out: Leak[] = [];
  for (const secret of secrets) {
    const count = occurrences(text, secret);
    if (!count) continue;
    const at = text.indexOf(secret);
    out.push({ secret, sink, count, around: at >= 0 ? text.slice(Math.max(0, at - 120), at + 120) : "" });
  }
  return out;
}

export async function fileLeaks(files: string[], secrets: readonly string[]): Promise<Leak[]> {
  const out: Leak[] = [];
  for (const f of files) out.push(...leaksIn(f, await readFile(f, "latin1").catch(() => ""), secrets));
  return out;
}

/**
 * The built binary in a pseudo-terminal (util-linux `script`), so the live TTY renderer draws: wide
 * enough that no line is cut. The args reach the command through the environment, never pasted into
 * the shell text.
 */
export function atomkitTty(cwd: string, args: string[]): Promise<Cli> {
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: "xterm", NO_COLOR: "1", CI: "" };
  args.forEach((a, i) => {
    env[`ATOMKIT_TEST_ARG${i}`] = a;
  });
  const argRefs = args.map((_, i) => `"$ATOMKIT_TEST_ARG${i}"`).join(" ");
  const inner = `stty cols 400 rows 60 2>/dev/null; exec "$ATOMKIT_TEST_NODE" "$ATOMKIT_TEST_BIN" ${argRefs}`;
  env.ATOMKIT_TEST_NODE = process.execPath;
  env.ATOMKIT_TEST_BIN = BIN;
  return new Promise((resolve) => {
    const child = spawn("script", ["-qefc", inner, "/dev/null"], { cwd, env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
    });
    child.stdin.end();
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

import { createHash } from "node:crypto";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";

/** What `hashTree` and `snapshotTree` leave out of the picture. */
export interface TreeOptions {
  /**
   * Called with each path relative to the root, `/`-separated (`.state`, `www/index.html`); `true`
   * leaves that path, and everything under it, out. For what changes on every run beside the step's
   * own work, above all the host's `stateDir` (locks, backups) when it lives inside the tree:
   * `{ ignore: (p) => p === ".state" || p.startsWith(".state/") }`.
   */
  ignore?: (relPath: string) => boolean;
}

/**
 * A hash of a whole local directory tree: every path, type, permission bits, file content and symlink
 * target, minus what `options.ignore` leaves out. Two trees hash equal only if they are the same byte
 * for byte. Missing root hashes as "absent".
 */
export async function hashTree(root: string, options: TreeOptions = {}): Promise<string> {
  const hash = createHash("sha256");
  const walk = async (rel: string): Promise<void> => {
    const abs = rel ? join(root, rel) : root;
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(abs);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT" && !rel) {
        hash.update("absent");
        return;
      }
      throw error;
    }
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) hash.update(`L ${rel} ${await readlink(abs)}\n`);
    else if (st.isFile())
      hash
        .update(`F ${rel} ${mode} `)
        .update(await readFile(abs))
        .update("\n");
    else if (st.isDirectory()) {
      hash.update(`D ${rel} ${mode}\n`);
      for (const name of (await readdir(abs)).sort()) {
        const child = rel ? `${rel}/${name}` : name;
        if (!options.ignore?.(child)) await walk(child);
      }
    } else hash.update(`O ${rel} ${mode}\n`);
  };
  await walk("");
  return hash.digest("hex");
}

/** One path of a `snapshotTree`: what `hashTree` hashes, kept per path so two pictures can be diffed. */
export interface TreeEntry {
  type: "file" | "directory" | "symlink" | "other";
  /** Permission bits (not for symlinks, whose own bits mean nothing on Linux). */
  mode?: number;
  /** A file's content. */
  sha256?: string;
  /** A symlink's target, as stored. */
  target?: string;
}

/**
 * A picture of a local directory tree, path by path (relative paths; `"."` is the root itself; a missing
 * root has no entries). Compared by the step contract like `hashTree`, but a mismatch is reported as
 * the paths that differ (`~ www/index.html (content)`, `+ www/new`, `- www/old`) instead of two hashes.
 * Made by `snapshotTree(root, { ignore })`.
 */
export class TreeSnapshot {
  constructor(
    readonly root: string,
    readonly entries: Readonly<Record<string, TreeEntry>>,
  ) {}
}

/** A `TreeSnapshot` of a local directory tree, minus what `options.ignore` leaves out (see `diffTrees`). */
export async function snapshotTree(root: string, options: TreeOptions = {}): Promise<TreeSnapshot> {
  const entries: Record<string, TreeEntry> = {};
  const walk = async (rel: string): Promise<void> => {
    const abs = rel ? join(root, rel) : root;
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(abs);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT" && !rel) return;
      throw error;
    }
    const key = rel || ".";
    const mode = st.mode & 0o7777;
    if (st.isSymbolicLink()) entries[key] = { type: "symlink", target: await readlink(abs) };
    else if (st.isFile())
      entries[key] = {
        type: "file",
        mode,
        sha256: createHash("sha256")
          .update(await readFile(abs))
          .digest("hex"),
      };
    else if (st.isDirectory()) {
      entries[key] = { type: "directory", mode };
      for (const name of (await readdir(abs)).sort()) {
        const child = rel ? `${rel}/${name}` : name;
        if (!options.ignore?.(child)) await walk(child);
      }
    } else entries[key] = { type: "other", mode };
  };
  await walk("");
  return new TreeSnapshot(root, entries);
}

/**
 * The paths that differ from `before` to `after`, one line each: `+ path` (added), `- path` (removed),
 * `~ path (content, mode 644 → 600, target a → b, file → directory)`. Empty when the trees are equal.
 */
export function diffTrees(before: TreeSnapshot, after: TreeSnapshot): string[] {
  const lines: string[] = [];
  const paths = [...new Set([...Object.keys(before.entries), ...Object.keys(after.entries)])].sort();
  const octal = (m: number | undefined) => (m === undefined ? "?" : m.toString(8));
  for (const path of paths) {
    const a = before.entries[path];
    const b = after.entries[path];
    if (!a) lines.push(`+ ${path}${b?.type === "file" ? "" : ` (${b?.type})`}`);
    else if (!b) lines.push(`- ${path}${a.type === "file" ? "" : ` (${a.type})`}`);
    else if (a.type !== b.type) lines.push(`~ ${path} (${a.type} → ${b.type})`);
    else {
      const what: string[] = [];
      if (a.sha256 !== b.sha256) what.push("content");
      if (a.mode !== b.mode) what.push(`mode ${octal(a.mode)} → ${octal(b.mode)}`);
      if (a.target !== b.target) what.push(`target ${a.target} → ${b.target}`);
      if (what.length) lines.push(`~ ${path} (${what.join(", ")})`);
    }
  }
  return lines;
}

import { posix } from "node:path";
import { defineStep, type Host, type StepContext } from "@atomkit/core";
import {
  absolutePath,
  checkFields,
  deepEqual,
  fail,
  integer,
  ParamsFieldError,
  show,
} from "@atomkit/core/kit";
import {
  exists,
  indexFile,
  PACKAGE,
  readJson,
  renameOnHost,
  requireInTrash,
  sha256Hex,
  trashRoot,
  trashSlot,
  writeIndex,
} from "./_utils";
import { absPath, fields, plainObject, segment } from "./state-check";

/** Which releases `fs.prune` keeps in `dir`; the others go to the run's trash. */
export interface PruneReleasesOptions {
  /** Absolute path of the directory holding one subdirectory per release, e.g. `/srv/app/releases`. */
  dir: string;
  /** How many of the newest releases to keep (at least 1). */
  keep: number;
  /** The symlink pointing at the live release (e.g. `/srv/app/current`): its target is never pruned. */
  current?: string;
  /**
   * Releases never pruned, by name or absolute path: pass the last release known to be good (from the
   * trail of the last committed run) so a rollback target always survives.
   */
  protect?: string[];
  /**
   * What "newest" means: `name` (default) sorts release names naturally (`9` < `10`, and timestamps
   * like `20261127T001502Z` in time order); `mtime` uses the directories' modification times.
   */
  order?: "name" | "mtime";
  /** Trash directory, on the same filesystem as `dir`. Default `<host.stateDir>/trash`. */
  trash?: string;
}

/** `fs.prune`'s options validated, defaults filled in: what the trail records. */
export interface PruneReleasesParams {
  dir: string;
  keep: number;
  current?: string;
  /** Release names (absolute paths given in the options are reduced to their name in `dir`). */
  protect: string[];
  order: "name" | "mtime";
  /** Absent: the host's default trash, `<host.stateDir>/trash`. */
  trash?: string;
}

/**
 * The releases in `dir` (sorted by name) and, for pruned ones, where they wait in the trash. `same()`
 * compares the releases only: where a pruned one waits is evidence for undo, not what is deployed.
 */
export interface PruneState {
  releases: string[];
  pruned: Record<string, string>;
}

interface PruneIndex {
  dir: string;
  pruned: Record<string, string>;
}

const KIND = "fs.prune";
const collator = new Intl.Collator("en", { numeric: true });

/**
 * `fs.prune`: keeps the newest `keep` releases in `dir` and moves the others to the run's trash, never
 * the one `current` points to nor any in `protect`. Undo moves them back. Hidden entries (names starting
 * with ".") and non-directories are never touched.
 */
export const pruneReleases = defineStep({
  kind: KIND,
  package: PACKAGE,
  params: (input: PruneReleasesOptions): PruneReleasesParams => {
    const o = checkFields(input, {
      dir: absolutePath,
      keep: (v, p) => integer(v, p, { min: 1 }),
      current: (v, p) => (v === undefined ? undefined : absolutePath(v, p)),
      protect: (v, p) => (v === undefined ? [] : protectList(v, p)),
      order: (v, p) => {
        if (v !== undefined && v !== "name" && v !== "mtime") {
          throw new ParamsFieldError(p, `expected "name" or "mtime", found ${show(v)}`);
        }
        return (v ?? "name") as PruneReleasesParams["order"];
      },
      trash: (v, p) => (v === undefined ? undefined : absolutePath(v, p)),
    });
    // absolute entries must be releases of `dir`: checked once `dir` itself is valid
    const protect = o.protect.map((item, i) => {
      if (!item.startsWith("/")) return item;
      const abs = posix.normalize(item).replace(/\/+$/, "");
      if (posix.dirname(abs) !== o.dir) {
        throw new ParamsFieldError(
          `protect.${i}`,
          `${show(item)} is not a release directly in ${show(o.dir)}`,
        );
      }
      return posix.basename(abs);
    });
    return {
      dir: o.dir,
      keep: o.keep,
      ...(o.current !== undefined ? { current: o.current } : {}),
      protect,
      order: o.order,
      ...(o.trash !== undefined ? { trash: o.trash } : {}),
    };
  },
  describe: (p) => `prune ${p.dir}, keep ${p.keep}`,
  observe: (ctx, p) => observePrune(ctx.host, p),
  same: (a, b) => deepEqual(a.releases, b.releases),
  state: (input: unknown): PruneState =>
    fields(plainObject(input, ""), { releases: releaseNames, pruned: trashMap }, "") as unknown as PruneState,
  owns: (p) => [p.dir, ...(p.trash ? [p.trash] : [])],
  async apply(ctx, p) {
    const { host } = ctx;
    const now = await observePrune(host, p);
    const newest = await newestFirst(host, p, now.releases);
    const spared = new Set([...p.protect, ...(await liveRelease(ctx, p))]);
    const victims = newest.slice(p.keep).filter((name) => !spared.has(name));
    if (!victims.length) return;
    const root = trashRoot(host, p.trash);
    const into = trashSlot(root, ctx.runId, p.dir);
    await host.mkdir(into, { recursive: true, mode: 0o700 });
    // recorded before the moves: if we die half-way, observe still finds every moved release
    const pruned = { ...now.pruned };
    for (const name of victims) pruned[name] = posix.join(into, name);
    await writeIndex(host, indexFile(root, `prune:${p.dir}`), { dir: p.dir, pruned } satisfies PruneIndex);
    for (const name of victims) {
      await renameOnHost(ctx.host, posix.join(p.dir, name), posix.join(into, name));
    }
  },
  // Cannot restore: nothing while the trash is kept; after emptyTrash() the pruned releases are gone.
  async undo(ctx, p, before, after) {
    const { host } = ctx;
    const root = trashRoot(host, p.trash);
    const file = indexFile(root, `prune:${p.dir}`);
    const index = await readJson<PruneIndex>(host, file);
    const present = new Set((await observePrune(host, p)).releases);
    const restored: string[] = [];
    for (const name of before.releases) {
      if (present.has(name)) continue;
      const from = after.pruned[name] ?? index?.pruned[name];
      if (from) requireInTrash(root, from, `release ${show(name)}`);
      if (!from || !(await exists(host, from))) {
        throw fail(`the pruned release ${show(name)} is no longer in the trash`, {
          expected: `release ${show(name)} in the trash${from ? ` at ${show(from)}` : ""}`,
          found: "nothing",
          hint: "the trash was emptied (emptyTrash) or changed by hand; redeploy that release if it is needed",
        });
      }
      await renameOnHost(ctx.host, from, posix.join(p.dir, name));
      restored.push(name);
    }
    if (index && restored.length) {
      const pruned = Object.fromEntries(
        Object.entries(index.pruned).filter(([name]) => !restored.includes(name)),
      );
      if (Object.keys(pruned).length)
        await writeIndex(host, file, { dir: p.dir, pruned } satisfies PruneIndex);
      else await host.rm(file, { force: true });
    }
  },
});

// --- Internal helpers ---

async function observePrune(host: Host, p: PruneReleasesParams): Promise<PruneState> {
  const st = await host.stat(p.dir);
  const releases: string[] = [];
  if (st?.type === "directory") {
    for (const name of await host.readdir(p.dir)) {
      if (name.startsWith(".")) continue;
      if ((await host.lstat(posix.join(p.dir, name)))?.type === "directory") releases.push(name);
    }
  }
  releases.sort(collator.compare);
  const index = await readJson<PruneIndex>(host, indexFile(trashRoot(host, p.trash), `prune:${p.dir}`));
  const pruned: Record<string, string> = {};
  const present = new Set(releases);
  for (const name of Object.keys(index?.pruned ?? {}).sort(collator.compare)) {
    const at = index!.pruned[name]!;
    if (!present.has(name) && typeof at === "string" && (await exists(host, at))) pruned[name] = at;
  }
  return { releases, pruned };
}

async function newestFirst(host: Host, p: PruneReleasesParams, releases: string[]): Promise<string[]> {
  if (p.order === "name") return [...releases].sort(collator.compare).reverse();
  const times = new Map<string, number>();
  for (const name of releases) times.set(name, (await host.lstat(posix.join(p.dir, name)))?.mtimeMs ?? 0);
  return [...releases].sort((a, b) => times.get(b)! - times.get(a)! || collator.compare(b, a));
}

/**
 * The release `current` points to: lexically from its target, and also as the host resolves it
 * (`realpath`), so a link reaching the release through another symlink still protects it.
 */
async function liveRelease(ctx: StepContext, p: PruneReleasesParams): Promise<string[]> {
  if (!p.current) return [];
  const { host } = ctx;
  const st = await host.lstat(p.current);
  if (!st) return [];
  if (st.type !== "symlink") {
    throw fail(`${show(p.current)} is not a symlink, so the live release is unknown`, {
      expected: "a symlink to the live release",
      found: `a ${st.type}`,
      hint: "pass the `current` symlink (e.g. /srv/app/current), or leave `current` out",
    });
  }
  const names: string[] = [];
  const inDir = (dir: string, abs: string) => {
    const rel = posix.relative(dir, abs);
    if (rel && !rel.startsWith("..") && !posix.isAbsolute(rel)) names.push(rel.split("/")[0]!);
  };
  inDir(p.dir, posix.resolve(posix.dirname(p.current), await host.readlink(p.current)));
  const real = async (path: string) => {
    const r = await host.exec(["realpath", "--", path], { reject: false });
    return r.code === 0 ? r.stdout.replace(/\n$/, "") : null;
  };
  const [target, dir] = await Promise.all([real(p.current), real(p.dir)]);
  if (target && dir) inDir(dir, target);
  return names;
}

/** `protect`: release names, or absolute paths (checked against `dir` by the caller). */
function protectList(value: unknown, field: string): string[] {
  if (!Array.isArray(value)) throw new ParamsFieldError(field, `expected a list, found ${show(value)}`);
  return value.map((item, i) => {
    if (typeof item !== "string" || item === "" || item.includes("\0")) {
      throw new ParamsFieldError(`${field}.${i}`, `expected a release name or path, found ${show(item)}`);
    }
    if (!item.startsWith("/") && item.includes("/")) {
      throw new ParamsFieldError(
        `${field}.${i}`,
        `expected a release name (no "/") or absolute path, found ${show(item)}`,
      );
    }
    return item;
  });
}

/** Recorded release names: single names, no duplicates (undo puts each back at `<dir>/<name>`). */
function releaseNames(value: unknown, field: string): string[] {
  if (!Array.isArray(value))
    throw new ParamsFieldError(field, `expected a list of release names, found ${show(value)}`);
  for (const [i, name] of value.entries()) segment(name, `${field}.${i}`);
  if (new Set(value).size !== value.length) throw new ParamsFieldError(field, "a release is listed twice");
  return [...value] as string[];
}

/** Recorded trash locations by release name. */
function trashMap(value: unknown, field: string): Record<string, string> {
  // fromEntries defines own properties: a name like "__proto__" stays a plain key
  return Object.fromEntries(
    Object.entries(plainObject(value, field)).map(([name, at]) => {
      segment(name, `${field}.${name}`);
      return [name, absPath(at, `${field}.${name}`) as string];
    }),
  );
}

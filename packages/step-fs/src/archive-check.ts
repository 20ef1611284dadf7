import type { ErrorDetails } from "@atomkit/core";
import type { ReadEntry } from "tar";
import { type ArchiveLimits, UnsafeArchiveError } from "./archive-error";

export const MARKER = ".atomkit-release";

const FILE_TYPES = new Set(["File", "OldFile", "ContiguousFile"]);
const MAX_SYMLINK_HOPS = 40; // Linux's own limit when resolving a path

/**
 * Checks entries one by one as they are read, then links against the whole tree in `finish`. Names are
 * cut the way both node-tar and GNU tar cut them for `strip`: every "/"-separated component counts,
 * "." included (`./x` with strip 1 is extracted as `x`), so what is checked is what gets written.
 */
export class EntryChecker {
  entries = 0;
  bytes = 0;
  /** Path (after strip) → entry type, of entries that are extracted. */
  private readonly paths = new Map<string, string>();
  /** Symlink targets by folded path (see `fold`), and the paths as named. */
  private readonly symlinks = new Map<string, string>();
  private readonly symlinkPaths: string[] = [];
  private readonly files = new Set<string>();

  constructor(
    private readonly limits: ArchiveLimits,
    private readonly strip: number,
  ) {}

  add(e: ReadEntry): void {
    const name = e.path;
    if (++this.entries > this.limits.maxEntries) {
      throw unsafe(`more than ${this.limits.maxEntries} entries`, undefined, {
        expected: `at most ${this.limits.maxEntries} entries (limits.maxEntries)`,
        found: `entry number ${this.entries}, ${show(name)}`,
        hint: "raise limits.maxEntries if this archive is trusted and really this large",
      });
    }
    // GNU tar applies a global pax header's path to the entries after it, node-tar does not: refuse
    // the keys that could make the host's tar see other names or sizes than were inspected here
    const global = e.globalExtended as Record<string, unknown> | null | undefined;
    for (const key of ["path", "linkpath", "size", "mode", "dev", "ino", "nlink"]) {
      if (global?.[key] !== undefined && global?.[key] !== null) {
        throw unsafe(`a global pax header sets "${key}" for the entries after it`, name, {
          hint: "global headers may carry comments (git archive) or times, never names or sizes",
        });
      }
    }
    const type = String(e.type);
    if (type === "CharacterDevice" || type === "BlockDevice" || type === "FIFO") {
      throw unsafe(`entry ${show(name)} is a ${type} (device and FIFO entries are never extracted)`, name);
    }
    const isFile = FILE_TYPES.has(type);
    if (!isFile && type !== "Directory" && type !== "SymbolicLink" && type !== "Link") {
      throw unsafe(`entry ${show(name)} has an unsupported type (${type})`, name);
    }
    if (!isFile && type !== "Directory" && name.endsWith("/")) {
      throw unsafe(`entry ${show(name)} ends with "/" but is a ${type}`, name);
    }
    const raw = rawParts(name, name, "path");
    if (isFile) {
      if ((e.mode ?? 0) & 0o6000) {
        throw unsafe(`entry ${show(name)} is setuid or setgid (mode ${(e.mode ?? 0).toString(8)})`, name, {
          hint: "clear the setuid/setgid bits when building the archive (chmod ug-s)",
        });
      }
      this.bytes += e.size ?? 0;
      if (this.bytes > this.limits.maxBytes) {
        throw unsafe(`it unpacks to more than ${this.limits.maxBytes} bytes`, name, {
          expected: `at most ${this.limits.maxBytes} bytes of files (limits.maxBytes)`,
          found: `${this.bytes} bytes by entry ${show(name)}`,
          hint: "raise limits.maxBytes if this archive is trusted and really this large",
        });
      }
    }
    let link: string | undefined;
    if (type === "SymbolicLink" || type === "Link") {
      link = e.linkpath ?? "";
      if (link === "" || link.includes("\0")) throw unsafe(`link ${show(name)} has no valid target`, name);
    }
    // with fewer components than strip, both tars skip the entry; with exactly strip, node-tar maps it
    // onto the target directory and skips it unless it is a directory, GNU tar skips it
    if (raw.length <= this.strip) return;
    const parts = raw.slice(this.strip).filter((p) => p !== ".");
    if (parts.length === 0 && type !== "Directory") {
      // "." (or "a/." once "a" is stripped) as a symlink, file or link: the target directory itself
      throw unsafe(`entry ${show(name)} would replace the target directory`, name, {
        expected: 'only a directory entry for "." (the directory being extracted into)',
        found: `entry ${show(name)}, a ${type}`,
      });
    }
    if (parts.length > this.limits.maxDepth) {
      throw unsafe(`entry ${show(name)} is deeper than ${this.limits.maxDepth} path components`, name, {
        expected: `at most ${this.limits.maxDepth} path components after strip (limits.maxDepth)`,
        found: `${parts.length} components`,
        hint: "raise limits.maxDepth if this archive is trusted and really this deep",
      });
    }
    if (parts.length === 0) return; // a directory entry for the target itself
    const rel = parts.join("/");
    if (rel === MARKER)
      throw unsafe(`entry ${show(name)} uses the name reserved for the release marker`, name);
    const seen = this.paths.get(rel);
    if (seen !== undefined && !(seen === "Directory" && type === "Directory")) {
      throw unsafe(`entry ${show(name)} appears twice in the archive`, name, {
        hint: "a later duplicate would silently replace the first (e.g. a file by a symlink); rebuild the archive",
      });
    }
    this.paths.set(rel, type);
    if (type === "SymbolicLink") {
      if (link!.startsWith("/")) {
        throw unsafe(
          `symlink ${show(name)} points to the absolute path ${show(link)}, outside the target`,
          name,
          { hint: "use relative symlink targets inside the release" },
        );
      }
      this.symlinks.set(fold(rel), link!);
      this.symlinkPaths.push(rel);
    } else if (type === "Link") {
      // hard link targets are archive paths, stripped like entry names
      const target = rawParts(link!, name, "hard link target");
      const targetRel = target
        .slice(this.strip)
        .filter((p) => p !== ".")
        .join("/");
      if (target.length <= this.strip || !this.files.has(targetRel)) {
        throw unsafe(
          `hard link ${show(name)} points to ${show(link)}, which is not a file earlier in the archive`,
          name,
          { hint: "hard links may only join regular files inside the archive" },
        );
      }
      this.files.add(rel);
    } else if (isFile) {
      this.files.add(rel);
    }
  }

  /** Checks what needs the whole tree: nothing is written through a symlink; every symlink stays inside. */
  finish(): void {
    if (this.entries === 0)
      throw unsafe("the archive has no entries", undefined, { hint: "is it the right file?" });
    if (!this.symlinks.size) return;
    // every component of every entry (hard links' own paths included; their targets are files, so
    // entries, so checked too): none may be, or lie under, one of the archive's symlinks
    for (const rel of this.paths.keys()) {
      const parts = rel.split("/");
      for (let i = 1; i < parts.length; i++) {
        const prefix = parts.slice(0, i).join("/");
        if (this.symlinks.has(fold(prefix))) {
          throw unsafe(`entry ${show(rel)} would be written through the symlink ${show(prefix)}`, rel, {
            hint: "an archive may not put files under one of its own symlinks",
          });
        }
      }
    }
    for (const rel of this.symlinkPaths) this.resolveInside(rel, this.symlinks.get(fold(rel))!);
  }

  /** Resolves a symlink target as the kernel would (through the archive's own symlinks); throws if it leaves. */
  private resolveInside(rel: string, target: string): void {
    const stack = rel.split("/").slice(0, -1);
    const queue = target.split("/");
    let hops = 0;
    while (queue.length) {
      const part = queue.shift()!;
      if (part === "" || part === ".") continue;
      if (part === "..") {
        if (!stack.length) {
          throw unsafe(`symlink ${show(rel)} → ${show(target)} points outside the target directory`, rel, {
            hint: "symlinks in a release must stay inside it; create links to shared paths with a deploy step",
          });
        }
        stack.pop();
        continue;
      }
      const next = this.symlinks.get(fold([...stack, part].join("/")));
      if (next !== undefined) {
        if (++hops > MAX_SYMLINK_HOPS) throw unsafe(`symlink ${show(rel)} is part of a symlink loop`, rel);
        if (next.startsWith("/")) throw unsafe(`symlink ${show(rel)} resolves to an absolute path`, rel);
        queue.unshift(...next.split("/"));
        continue;
      }
      stack.push(part);
    }
  }
}

/**
 * The "/"-separated components of an entry name or hard link target, as both tars count them for
 * strip (a trailing "/" ends a directory name and is not a component). Refuses absolute paths, `..`,
 * NUL and empty components (`a//b`: node-tar and GNU tar would strip it differently).
 */
function rawParts(path: string, entry: string, what: string): string[] {
  if (path.includes("\0")) throw unsafe(`entry ${show(entry)}: the ${what} contains a NUL byte`, entry);
  if (path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path)) {
    throw unsafe(`entry ${show(entry)}: the ${what} ${show(path)} is absolute`, entry, {
      hint: "build the archive from inside the release directory (tar -C dir -czf out.tar.gz .)",
    });
  }
  const parts = (path.endsWith("/") ? path.slice(0, -1) : path).split("/");
  if (parts.includes("..")) {
    throw unsafe(`entry ${show(entry)}: the ${what} ${show(path)} has a ".." component`, entry, {
      hint: "an archive entry may not climb out of the directory it is extracted into",
    });
  }
  if (parts.includes("")) {
    throw unsafe(`entry ${show(entry)}: the ${what} ${show(path)} has an empty path component`, entry, {
      hint: 'rebuild the archive with GNU tar or git archive, which never write "//" in a name',
    });
  }
  return parts;
}

/** Case- and Unicode-folded, so a case-insensitive host filesystem cannot alias a symlink. */
const fold = (path: string) => path.normalize("NFC").toLowerCase();

export function unsafe(
  problem: string,
  entry: string | undefined,
  details: ErrorDetails = {},
): UnsafeArchiveError {
  return new UnsafeArchiveError(problem, entry, {
    expected: "entries that stay inside the target directory",
    found: entry === undefined ? undefined : `entry ${show(entry)}`,
    hint: "rebuild the archive from the release directory; never extract archives you did not build",
    ...details,
  });
}

const show = (v: unknown) => JSON.stringify(v) ?? String(v);

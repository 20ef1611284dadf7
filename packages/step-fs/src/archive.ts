import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { AtomError, type ErrorDetails } from "@atomkit/core";
import { Parser, type ReadEntry, Unpack } from "tar";

/** Limits of what an archive may unpack to: the guard against tar and gzip bombs. */
export interface ArchiveLimits {
  /** Sum of the sizes of all file entries. Default 1 GiB. */
  maxBytes: number;
  /** Number of entries of any type. Default 100 000. */
  maxEntries: number;
}

export const DEFAULT_LIMITS: ArchiveLimits = { maxBytes: 1024 ** 3, maxEntries: 100_000 };

export interface InspectArchiveOptions {
  limits?: Partial<ArchiveLimits>;
  /** Leading path components removed from every entry, like `tar --strip-components`. Default 0. */
  strip?: number;
  signal?: AbortSignal;
}

/** What `inspectArchive` found in an archive it accepted. */
export interface ArchiveSummary {
  /** sha256 of the archive file itself (compressed bytes). */
  sha256: string;
  compression: "none" | "gzip";
  entries: number;
  /** Sum of the sizes of the file entries: what extraction writes. */
  bytes: number;
}

/** An archive that `fs.untar` refuses to extract; nothing was written. */
export class UnsafeArchiveError extends AtomError {
  /** The entry at fault, as named in the archive (absent for problems of the whole archive). */
  readonly entry?: string;
  readonly problem: string;
  constructor(problem: string, entry: string | undefined, details: ErrorDetails = {}) {
    super("ATOM_STEP_FAILED", `unsafe archive, nothing was extracted: ${problem}`, details);
    this.problem = problem;
    if (entry !== undefined) this.entry = entry;
  }
}

/**
 * Reads a local .tar / .tar.gz once, without extracting it, and refuses it (UnsafeArchiveError) unless
 * every entry is safe to extract into an empty directory: no absolute paths, no `..`, no device or FIFO
 * entries, links only to places inside the directory (following the archive's own symlinks), nothing
 * written through a symlink, and within the size and entry limits. Returns the archive's sha256, which
 * extraction checks again so the bytes extracted are the bytes inspected.
 */
export async function inspectArchive(
  file: string,
  options: InspectArchiveOptions = {},
): Promise<ArchiveSummary> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const compression = await sniffCompression(file);
  const checker = new EntryChecker(limits, options.strip ?? 0);
  const hash = createHash("sha256");
  let problem: Error | undefined;
  const fail = (error: unknown) => {
    problem ??=
      error instanceof UnsafeArchiveError
        ? error
        : new UnsafeArchiveError(
            `the archive cannot be read: ${(error as Error)?.message ?? error}`,
            undefined,
            {
              expected: "a complete, well-formed .tar or .tar.gz",
              found: file,
              hint: "check the file with `tar -tvf`; a download or build may have been cut short",
              cause: error,
            },
          );
  };
  const parser = new Parser({
    strict: true, // every warning (bad checksum, truncation, invalid header…) refuses the archive
    zstd: false,
    brotli: false,
    onReadEntry: (entry: ReadEntry) => {
      if (!problem) {
        try {
          checker.add(entry);
        } catch (error) {
          fail(error);
          parser.abort(error as Error);
        }
      }
      entry.resume();
    },
  });
  parser.on("error", fail);
  parser.on("ignoredEntry", (entry: ReadEntry) =>
    fail(unsafe(`entry ${show(entry.path)} has an unsupported type (${entry.type})`, entry.path)),
  );
  const done = new Promise<void>((resolve) => {
    parser.on("end", resolve);
    parser.on("abort", resolve);
    parser.on("error", () => resolve());
  });
  const stream = createReadStream(file, options.signal ? { signal: options.signal } : {});
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      if (problem) break;
      if (!parser.write(chunk) && !problem) await Promise.race([once(parser, "drain"), done]);
      if (problem) break;
    }
  } finally {
    stream.destroy();
  }
  if (!problem) {
    parser.end();
    await done;
  }
  if (!problem) {
    try {
      checker.finish();
    } catch (error) {
      fail(error);
    }
  }
  if (problem) throw problem;
  return { sha256: hash.digest("hex"), compression, entries: checker.entries, bytes: checker.bytes };
}

/**
 * Extracts a local archive with node-tar into an existing empty directory, hashing the bytes as they are
 * read: a different sha256 than inspected means the file changed in between, and the caller discards
 * the directory.
 */
export async function extractLocal(
  file: string,
  dir: string,
  o: { sha256: string; strip: number; signal?: AbortSignal },
): Promise<void> {
  const hash = createHash("sha256");
  const unpack = new Unpack({
    cwd: dir,
    strict: true,
    preserveOwner: false,
    strip: o.strip,
    zstd: false,
    brotli: false,
  });
  const finished = new Promise<void>((resolve, reject) => {
    unpack.on("close", resolve);
    unpack.on("error", reject);
  });
  const stream = createReadStream(file, o.signal ? { signal: o.signal } : {});
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      if (!unpack.write(chunk)) await Promise.race([once(unpack, "drain"), finished]);
    }
    unpack.end();
    await finished;
  } finally {
    stream.destroy();
  }
  const actual = hash.digest("hex");
  if (actual !== o.sha256) {
    throw new UnsafeArchiveError("the archive changed between inspection and extraction", undefined, {
      expected: `sha256 ${o.sha256}`,
      found: `sha256 ${actual}`,
      hint: "something is rewriting the archive file; build it once, then deploy it",
    });
  }
}

// --- Internal helpers ---

async function sniffCompression(file: string): Promise<"none" | "gzip"> {
  const fh = await open(file, "r");
  const head = Buffer.alloc(6);
  try {
    await fh.read(head, 0, 6, 0);
  } finally {
    await fh.close();
  }
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  const other =
    head.subarray(0, 3).toString("latin1") === "BZh"
      ? "bzip2"
      : head.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))
        ? "xz"
        : head.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))
          ? "zstd"
          : null;
  if (other) {
    throw new UnsafeArchiveError(`${other}-compressed archives are not supported`, undefined, {
      expected: "a .tar or .tar.gz file",
      found: `${other} data in ${file}`,
      hint: "recompress it as .tar.gz (gzip), which every host's tar extracts",
    });
  }
  return "none";
}

const FILE_TYPES = new Set(["File", "OldFile", "ContiguousFile"]);
const MAX_SYMLINK_HOPS = 40; // Linux's own limit when resolving a path

/** Checks entries one by one as they are read, then links against the whole tree in `finish`. */
class EntryChecker {
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
    const parts = safeParts(name, name, "path");
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
    if (parts.length <= this.strip) return; // tar skips it, as --strip-components does
    const rel = parts.slice(this.strip).join("/");
    if (rel === "" && type !== "Directory")
      throw unsafe(`entry ${show(name)} would replace the target directory`, name);
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
          {
            hint: "use relative symlink targets inside the release",
          },
        );
      }
      this.symlinks.set(fold(rel), link!);
      this.symlinkPaths.push(rel);
    } else if (type === "Link") {
      // hard link targets are archive paths, stripped like entry names
      const target = safeParts(link!, name, "hard link target");
      const targetRel = target.slice(this.strip).join("/");
      if (target.length <= this.strip || !this.files.has(targetRel)) {
        throw unsafe(
          `hard link ${show(name)} points to ${show(link)}, which is not a file earlier in the archive`,
          name,
          {
            hint: "hard links may only join regular files inside the archive",
          },
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

export const MARKER = ".atomkit-release";

/** Path components of an entry name or hard link target; refuses absolute paths, `..` and NUL. */
function safeParts(path: string, entry: string, what: string): string[] {
  if (path.includes("\0")) throw unsafe(`entry ${show(entry)}: the ${what} contains a NUL byte`, entry);
  if (path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path)) {
    throw unsafe(`entry ${show(entry)}: the ${what} ${show(path)} is absolute`, entry, {
      hint: "build the archive from inside the release directory (tar -C dir -czf out.tar.gz .)",
    });
  }
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) {
    throw unsafe(`entry ${show(entry)}: the ${what} ${show(path)} has a ".." component`, entry, {
      hint: "an archive entry may not climb out of the directory it is extracted into",
    });
  }
  return parts;
}

/** Case- and Unicode-folded, so a case-insensitive host filesystem cannot alias a symlink. */
const fold = (path: string) => path.normalize("NFC").toLowerCase();

function unsafe(problem: string, entry: string | undefined, details: ErrorDetails = {}): UnsafeArchiveError {
  return new UnsafeArchiveError(problem, entry, {
    expected: "entries that stay inside the target directory",
    found: entry === undefined ? undefined : `entry ${show(entry)}`,
    hint: "rebuild the archive from the release directory; never extract archives you did not build",
    ...details,
  });
}

const show = (v: unknown) => JSON.stringify(v) ?? String(v);

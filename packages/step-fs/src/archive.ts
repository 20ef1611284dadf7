import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { Parser, type ReadEntry, UnpackSync } from "tar";
import { EntryChecker, unsafe } from "./archive-check";
import { type ArchiveLimits, DEFAULT_LIMITS, UnsafeArchiveError } from "./archive-error";

export { MARKER } from "./archive-check";
export type { ArchiveLimits } from "./archive-error";
export { DEFAULT_LIMITS, MAX_DEPTH, UnsafeArchiveError } from "./archive-error";

/** How `inspectArchive` reads an archive and what it accepts. */
export interface InspectArchiveOptions {
  /** Refuse archives beyond these. Defaults: 1 GiB of files, 100 000 entries, 64 path components. */
  limits?: Partial<ArchiveLimits>;
  /** Leading path components removed from every entry, like `tar --strip-components`. Default 0. */
  strip?: number;
  /** Stops the read (e.g. `AbortSignal.timeout(ms)`); the signal's reason is thrown. */
  signal?: AbortSignal;
}

/** What `inspectArchive` found in an archive it accepted. */
export interface ArchiveSummary {
  /** sha256 of the archive file itself (compressed bytes). */
  sha256: string;
  /** Whether the archive is gzip-compressed. */
  compression: "none" | "gzip";
  /** Number of entries of any type (files, directories, links). */
  entries: number;
  /** Sum of the sizes of the file entries: what extraction writes. */
  bytes: number;
}

/**
 * Reads a local .tar / .tar.gz once, without extracting it, and refuses it (UnsafeArchiveError) unless
 * every entry is safe to extract into an empty directory: no absolute paths, no `..`, no device or FIFO
 * entries, `.` only as a directory, links only to places inside the directory (following the archive's
 * own symlinks), nothing written through a symlink, and within the size, entry and depth limits.
 * Returns the archive's sha256, which extraction checks again so the bytes extracted are the bytes
 * inspected.
 */
export async function inspectArchive(
  file: string,
  options: InspectArchiveOptions = {},
): Promise<ArchiveSummary> {
  return inspectSource({ file }, options);
}

/**
 * Where the archive's bytes come from: its file, or a copy read into memory once (`name` names it in
 * errors), so what is inspected and hashed is exactly what is later extracted, whatever the file does.
 */
export type ArchiveSource = { file: string } | { bytes: Buffer; name: string };

/** `inspectArchive` of a file or of bytes held in memory. */
export async function inspectSource(
  source: ArchiveSource,
  options: InspectArchiveOptions = {},
): Promise<ArchiveSummary> {
  const file = "file" in source ? source.file : source.name;
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const compression =
    "file" in source ? await sniffCompression(source.file) : compressionOf(source.bytes, file);
  const checker = new EntryChecker(limits, options.strip ?? 0);
  let problem: unknown;
  const fail = (error: unknown) => {
    problem ??= error;
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
        }
      }
      entry.resume();
    },
  });
  parser.on("error", fail);
  parser.on("warn", (code: string, message: string) => fail(new Error(`${code}: ${message}`)));
  parser.on("ignoredEntry", (entry: ReadEntry) =>
    fail(unsafe(`entry ${show(entry.path)} has an unsupported type (${entry.type})`, entry.path)),
  );
  const ended = new Promise<void>((resolve) => {
    parser.on("end", resolve);
    parser.on("error", () => resolve());
  });
  let sha256 = "";
  try {
    sha256 = await readTar(source, compression, limits, options.signal, (slice) => {
      parser.write(slice);
      if (problem) throw problem;
    });
    parser.end(); // truncation and "not a tar" surface here
    await ended;
    if (!problem) checker.finish();
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    fail(error);
  }
  if (problem) throw unreadable(problem, file);
  return { sha256, compression, entries: checker.entries, bytes: checker.bytes };
}

/**
 * Extracts a local archive with node-tar into an existing empty directory, hashing the bytes as they are
 * read: a different sha256 than inspected means the file changed in between, and the caller discards
 * the directory (bytes held in memory are the inspected bytes: nothing to compare, no second hash). node-tar's synchronous unpacker is used on purpose: every error it raises (an error
 * event, a strict-mode warning, a throw) happens inside `write`, so it is caught here, and when this
 * function settles nothing is still writing into `dir` — the caller can remove it without a race.
 */
export async function extractLocal(
  source: ArchiveSource,
  dir: string,
  o: {
    sha256: string;
    strip: number;
    limits: ArchiveLimits;
    compression: "none" | "gzip";
    signal?: AbortSignal;
  },
): Promise<void> {
  const unpack = new UnpackSync({
    cwd: dir,
    strict: true,
    preserveOwner: false,
    strip: o.strip,
    zstd: false,
    brotli: false,
  });
  let failure: unknown;
  unpack.on("error", (error: unknown) => {
    failure ??= error;
  });
  // strict mode turns warnings into errors; should one still arrive as a warning, it must not pass
  unpack.on("warn", (code: string, message: string, data: object) => {
    failure ??= Object.assign(new Error(`${code}: ${message}`), data, { tarCode: code });
  });
  const fromFile = "file" in source;
  const actual = await readTar(
    source,
    o.compression,
    o.limits,
    o.signal,
    (slice) => {
      unpack.write(slice);
      if (failure) throw failure;
    },
    fromFile,
  );
  unpack.end();
  if (failure) throw failure;
  if (fromFile && actual !== o.sha256) {
    throw new UnsafeArchiveError("the archive changed between inspection and extraction", undefined, {
      expected: `sha256 ${o.sha256}`,
      found: `sha256 ${actual}`,
      hint: "something is rewriting the archive file; build it once, then deploy it",
    });
  }
}

// --- Internal helpers ---

/** node-tar parses synchronously: small slices keep one `write` from holding the event loop for long. */
const SLICE = 16 * 1024;

/**
 * Reads the source once, hashing the bytes as read, and hands the tar stream (gunzipped here, by the
 * same code for inspection and extraction) to `feed` in slices; `feed` throws to stop. Every stream
 * error (read, gunzip, abort) rejects the returned promise, never escapes. Returns the bytes' sha256
 * (`hashing` false: bytes in memory already inspected, whose digest the caller holds; returns "").
 */
async function readTar(
  source: ArchiveSource,
  compression: "none" | "gzip",
  limits: ArchiveLimits,
  signal: AbortSignal | undefined,
  feed: (slice: Buffer) => void,
  hashing = true,
): Promise<string> {
  const hash = createHash("sha256");
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (hashing) hash.update(chunk);
      done(null, chunk);
    },
  });
  // node-tar's own inflater refused a gzip bomb by ratio; this one counts: file data within maxBytes,
  // plus headers (names in pax or GNU headers included) and end padding within a generous allowance
  const maxTar = limits.maxBytes + limits.maxEntries * 8192 + 64 * 1024 * 1024;
  let total = 0;
  const sink = async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) {
      for (let at = 0; at < chunk.length; at += SLICE) {
        signal?.throwIfAborted();
        const slice = chunk.subarray(at, at + SLICE);
        total += slice.length;
        if (total > maxTar) {
          throw unsafe(`it inflates to more than ${maxTar} bytes of tar data`, undefined, {
            expected: `at most ${maxTar} bytes once decompressed (from limits.maxBytes and limits.maxEntries)`,
            found: "more",
            hint: "a gzip bomb, or a trusted archive beyond the limits: raise limits.maxBytes",
          });
        }
        feed(slice);
      }
    }
  };
  const read =
    "file" in source
      ? createReadStream(source.file, { highWaterMark: 64 * 1024 })
      : Readable.from(chunks(source.bytes, 64 * 1024), { objectMode: false });
  const options = signal ? { signal } : {};
  if (compression === "gzip") await pipeline(read, tap, createGunzip(), sink, options);
  else await pipeline(read, tap, sink, options);
  return hashing ? hash.digest("hex") : "";
}

function unreadable(problem: unknown, file: string): UnsafeArchiveError {
  if (problem instanceof UnsafeArchiveError) return problem;
  return new UnsafeArchiveError(
    `the archive cannot be read: ${(problem as Error)?.message ?? problem}`,
    undefined,
    {
      expected: "a complete, well-formed .tar or .tar.gz",
      found: file,
      hint: "check the file with `tar -tvf`; a download or build may have been cut short",
      cause: problem,
    },
  );
}

/** The buffer in views of `size` bytes (no copies). */
function* chunks(bytes: Buffer, size: number): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function sniffCompression(file: string): Promise<"none" | "gzip"> {
  const fh = await open(file, "r");
  const head = Buffer.alloc(6);
  try {
    await fh.read(head, 0, 6, 0);
  } finally {
    await fh.close();
  }
  return compressionOf(head, file);
}

function compressionOf(head: Buffer, file: string): "none" | "gzip" {
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

const show = (v: unknown) => JSON.stringify(v) ?? String(v);

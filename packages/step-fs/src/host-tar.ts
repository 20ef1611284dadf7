import type { StepContext } from "@atomkit/core";
import { clip, stepError } from "./_utils";
import { type ArchiveSummary, UnsafeArchiveError } from "./archive";

/** What the host's tar needs beside the archive. */
interface HostTar {
  kind: string;
  archive: string;
  strip: number;
  summary: ArchiveSummary;
  /** The existing, empty temporary directory to extract into. */
  dir: string;
  signal: AbortSignal;
}

/**
 * Streams the inspected bytes into the host's tar (`tar -x -f -`) through one exec: the upload and the
 * extraction overlap, and nothing but the files lands on the host. The bytes are the buffer that was
 * inspected and hashed, so there is nothing to verify after the transfer.
 */
export async function streamToHostTar(ctx: StepContext, o: HostTar, bytes: Buffer): Promise<void> {
  await runTar(ctx, o, "-", bytes);
}

/**
 * Uploads the archive to `upload` (checking it is the inspected bytes: the file may have changed since)
 * and extracts it with the host's tar; for archives too large to hold in memory.
 */
export async function uploadToHostTar(ctx: StepContext, o: HostTar, upload: string): Promise<void> {
  const sent = await ctx.host.upload(o.archive, upload, { mode: 0o600, signal: o.signal });
  if (sent.sha256 !== o.summary.sha256) {
    throw new UnsafeArchiveError("the archive changed between inspection and upload", undefined, {
      expected: `sha256 ${o.summary.sha256}`,
      found: `sha256 ${sent.sha256}`,
      hint: "something is rewriting the archive file; build it once, then deploy it",
    });
  }
  await runTar(ctx, o, upload);
  await ctx.host.rm(upload, { force: true });
}

async function runTar(ctx: StepContext, o: HostTar, from: string, input?: Buffer): Promise<void> {
  // absolute paths (or "-") only: GNU tar never reads an archive name with "/" before its first ":" as
  // host:path. `-f -` and not tar's default archive, which $TAPE or the build may point elsewhere.
  const argv = ["tar", "-x", ...(o.summary.compression === "gzip" ? ["-z"] : []), "-f", from, "-C", o.dir];
  argv.push("--no-same-owner", ...(o.strip ? [`--strip-components=${o.strip}`] : []));
  const r = await ctx.host.exec(argv, {
    signal: o.signal,
    reject: false,
    env: { LC_ALL: "C" },
    ...(input ? { input } : {}),
  });
  if (r.code !== 0) {
    throw stepError(ctx, o.kind, "apply", "the host's tar could not extract the archive, nothing was kept", {
      expected: "tar to exit with code 0",
      found: `${r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`}: ${clip(r.stderr.trim(), 500) || "no output"}`,
      hint: "the archive passed inspection, so look at the host: free space, permissions, name lengths",
    });
  }
}

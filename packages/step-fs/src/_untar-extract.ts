import { posix } from "node:path";
import type { StepContext } from "@atomkit/core";
import { inspectOnce } from "./_inspected";
import { observeRelease, removeLeftovers } from "./_untar-release";
import { requireParentDir, show, stepError, tempBeside } from "./_utils";
import { type ArchiveSummary, extractLocal, MARKER } from "./archive";
import { streamToHostTar, uploadToHostTar } from "./host-tar";
import type { UntarParams } from "./untar";

/** Inspects, then extracts into a temporary directory beside `path`, renamed into place at the end. */
export async function extract(
  ctx: StepContext,
  kind: string,
  p: UntarParams,
  extractWith: "node-tar" | "tar",
  signal: AbortSignal,
): Promise<void> {
  const inspected = await inspectOnce(p.archive, { strip: p.strip, limits: p.limits, signal });
  try {
    await extractInspected(ctx, kind, p, extractWith, signal, inspected.summary, inspected.bytes);
  } finally {
    inspected.release();
  }
}

async function extractInspected(
  ctx: StepContext,
  kind: string,
  p: UntarParams,
  extractWith: "node-tar" | "tar",
  signal: AbortSignal,
  summary: ArchiveSummary,
  bytes: Buffer | null,
): Promise<void> {
  const { host } = ctx;
  const now = await observeRelease(host, p.path);
  if (now.type === "directory" && now.archive === summary.sha256) return; // this archive is already there
  if (now.type !== "missing") {
    throw stepError(ctx, kind, "apply", `${show(p.path)} already exists, so nothing was extracted`, {
      expected: "nothing at the path (fs.untar creates a new directory)",
      found:
        now.type === "directory" ? `a directory from archive ${now.archive ?? "unknown"}` : `a ${now.type}`,
      hint: "extract each release into a new directory (e.g. releases/<id>), or remove the old one first",
    });
  }
  await requireParentDir(ctx, kind, p.path);
  await removeLeftovers(host, p.path);
  const tmp = tempBeside(p.path);
  const upload = `${tmp}.tar`;
  try {
    await host.mkdir(tmp, { mode: 0o755 });
    if (extractWith === "node-tar") {
      const source = bytes ? { bytes, name: p.archive } : { file: p.archive };
      await extractLocal(source, tmp, { ...summary, strip: p.strip, limits: p.limits, signal });
    } else {
      const o = { kind: kind, archive: p.archive, strip: p.strip, summary, dir: tmp, signal };
      if (bytes) await streamToHostTar(ctx, o, bytes);
      else await uploadToHostTar(ctx, o, upload);
    }
    await host.writeFile(
      posix.join(tmp, MARKER),
      `${JSON.stringify({ sha256: summary.sha256, archive: posix.basename(p.archive), entries: summary.entries, bytes: summary.bytes })}\n`,
    );
    await host.rename(tmp, p.path);
  } catch (error) {
    // extractLocal has settled (nothing still writes into tmp) and the host's tar was waited for
    await host.rm(tmp, { recursive: true, force: true }).catch(() => {});
    if (extractWith === "tar" && !bytes) await host.rm(upload, { force: true }).catch(() => {});
    throw error;
  }
}

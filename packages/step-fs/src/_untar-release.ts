import { posix } from "node:path";
import type { Host } from "@atomkit/core";
import { readJson, tempPrefix } from "./_utils";
import { MARKER } from "./archive";
import type { UntarState } from "./untar";

// What fs.untar finds on the host: the release at `path` (named by its marker) and the debris of an
// attempt that died beside it.

/** The release at `path`: its type, and for a directory the archive its marker names. */
export async function observeRelease(host: Host, path: string): Promise<UntarState> {
  const st = await host.lstat(path);
  if (!st) return { type: "missing" };
  if (st.type !== "directory") return { type: st.type };
  const marker = await readJson<{ sha256?: unknown }>(host, posix.join(path, MARKER));
  const sha = marker?.sha256;
  // a marker is evidence from the host: only a well-formed digest names the archive
  return { type: "directory", archive: typeof sha === "string" && /^[0-9a-f]{64}$/.test(sha) ? sha : null };
}

/** Temporary directories and uploads of an attempt that died (the host lock keeps runs apart). */
export async function removeLeftovers(host: Host, path: string): Promise<void> {
  const dir = posix.dirname(path);
  const prefix = tempPrefix(path);
  if ((await host.lstat(dir))?.type !== "directory") return;
  for (const name of await host.readdir(dir)) {
    if (name.startsWith(prefix)) await host.rm(posix.join(dir, name), { recursive: true, force: true });
  }
}

import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";

/** One tag a `docker save` archive carries, with the image id it points at. */
export interface TarImage {
  ref: string;
  id: string;
}

const cache = new Map<string, TarImage[]>();

/**
 * The tags in a `docker save` archive (plain or gzip), read from its `manifest.json` without loading
 * it. Cached by path, size and mtime: observe runs several times per step.
 */
export async function readImageTar(path: string): Promise<TarImage[]> {
  const st = await stat(path);
  const key = `${path}\0${st.size}\0${st.mtimeMs}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const manifest = await findEntry(path, "manifest.json");
  if (!manifest) throw new Error(`${path} has no manifest.json: not an archive made by \`docker save\``);
  let entries: Array<{ Config?: unknown; RepoTags?: unknown }>;
  try {
    entries = JSON.parse(manifest.toString("utf8"));
  } catch {
    throw new Error(`${path}: manifest.json is not JSON`);
  }
  const out: TarImage[] = [];
  for (const e of Array.isArray(entries) ? entries : []) {
    const hex = /([a-f0-9]{64})(\.json)?$/.exec(String(e.Config ?? ""))?.[1];
    if (!hex) continue;
    for (const tag of Array.isArray(e.RepoTags) ? e.RepoTags : []) {
      if (typeof tag === "string") out.push({ ref: normalizeRef(tag), id: `sha256:${hex}` });
    }
  }
  cache.set(key, out);
  return out;
}

/** `busybox` → `busybox:latest`; `docker.io/library/x:1` → `x:1` (the form Docker lists tags in). */
export function normalizeRef(ref: string): string {
  let r = ref.replace(/^docker\.io\/(library\/)?/, "");
  if (!r.includes("@") && !r.slice(r.lastIndexOf("/") + 1).includes(":")) r += ":latest";
  return r;
}

async function findEntry(path: string, wanted: string): Promise<Buffer | undefined> {
  const fh = await open(path);
  const magic = Buffer.alloc(2);
  try {
    await fh.read(magic, 0, 2, 0);
  } finally {
    await fh.close();
  }
  const file = createReadStream(path);
  const input: Readable = magic[0] === 0x1f && magic[1] === 0x8b ? file.pipe(createGunzip()) : file;
  let header = Buffer.alloc(0);
  let skip = 0; // bytes of the current entry (with padding) still to pass
  let capture: { size: number; parts: Buffer[]; got: number } | undefined;
  let paxPath: string | undefined;
  let paxCapture: { size: number; parts: Buffer[]; got: number } | undefined;
  try {
    for await (const raw of input) {
      let chunk = raw as Buffer;
      while (chunk.length) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length);
          for (const cap of [capture, paxCapture]) {
            if (cap && cap.got < cap.size) {
              const take = chunk.subarray(0, Math.min(n, cap.size - cap.got));
              cap.parts.push(take);
              cap.got += take.length;
            }
          }
          chunk = chunk.subarray(n);
          skip -= n;
          if (skip === 0) {
            if (capture) return Buffer.concat(capture.parts);
            if (paxCapture) {
              paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(
                Buffer.concat(paxCapture.parts).toString("utf8"),
              )?.[1];
              paxCapture = undefined;
            }
          }
          continue;
        }
        const need = 512 - header.length;
        header = Buffer.concat([header, chunk.subarray(0, need)]);
        chunk = chunk.subarray(need);
        if (header.length < 512) break;
        const h = header;
        header = Buffer.alloc(0);
        if (h.every((b) => b === 0)) return undefined; // end of archive
        const size = parseInt(h.subarray(124, 136).toString("latin1").replace(/\0.*$/, "").trim() || "0", 8);
        const type = String.fromCharCode(h[156] ?? 0);
        const prefix = h.subarray(257, 262).toString("latin1") === "ustar" ? cstr(h.subarray(345, 500)) : "";
        const name = paxPath ?? (prefix ? `${prefix}/${cstr(h.subarray(0, 100))}` : cstr(h.subarray(0, 100)));
        if (type !== "x") paxPath = undefined;
        skip = Math.ceil(size / 512) * 512;
        if (type === "x") paxCapture = { size, parts: [], got: 0 };
        else if (name.replace(/^\.\//, "") === wanted && (type === "0" || type === "\0")) {
          capture = { size, parts: [], got: 0 };
          if (skip === 0) return Buffer.alloc(0);
        }
      }
    }
  } finally {
    file.destroy();
  }
  return undefined;
}

function cstr(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end === -1 ? b.length : end).toString("utf8");
}

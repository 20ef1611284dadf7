// Builds tar archives byte by byte (headers from node-tar's Header), so tests can make archives no
// well-behaved tar tool would: traversal, absolute paths, escaping links, devices, bombs.
import { gzipSync } from "node:zlib";
import { Header, Pax } from "tar";

export interface RawEntry {
  path: string;
  type?: "File" | "Directory" | "SymbolicLink" | "Link" | "CharacterDevice" | "BlockDevice" | "FIFO";
  body?: string | Buffer;
  linkpath?: string;
  mode?: number;
  /** Declared size, when it should differ from the body's (a lying header). */
  size?: number;
  /** Put the path in a pax extended header, with this harmless name in the ustar header. */
  paxPath?: string;
  /** Put the path in a GNU long-name entry ('L'), with this name in the header. */
  gnuLongPath?: string;
  /** A global pax header ('g') with these fields, before this entry. */
  globalPax?: Record<string, string | number>;
}

function block(h: Header): Buffer {
  const buf = Buffer.alloc(512);
  h.encode(buf, 0);
  return buf;
}

function padded(data: Buffer): Buffer {
  const rest = data.length % 512;
  return rest ? Buffer.concat([data, Buffer.alloc(512 - rest)]) : data;
}

export function rawTar(entries: RawEntry[], options: { gzip?: boolean; end?: boolean } = {}): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? "File";
    const body = Buffer.from(e.body ?? "");
    let path = e.path;
    if (e.globalPax) out.push(new Pax(e.globalPax, true).encode());
    if (e.paxPath !== undefined) {
      out.push(new Pax({ path: e.path }).encode());
      path = e.paxPath;
    }
    if (e.gnuLongPath !== undefined) {
      const name = Buffer.from(`${e.path}\0`);
      out.push(
        block(
          new Header({
            path: "././@LongLink",
            type: "NextFileHasLongPath",
            size: name.length,
            mode: 0o644,
            mtime: new Date(0),
          }),
        ),
      );
      out.push(padded(name));
      path = e.gnuLongPath;
    }
    out.push(
      block(
        new Header({
          path,
          type,
          size: e.size ?? (type === "File" ? body.length : 0),
          mode: e.mode ?? (type === "Directory" ? 0o755 : 0o644),
          uid: 0,
          gid: 0,
          mtime: new Date(1_700_000_000_000),
          ...(e.linkpath !== undefined ? { linkpath: e.linkpath } : {}),
          ...(type === "CharacterDevice" || type === "BlockDevice" ? { devmaj: 1, devmin: 3 } : {}),
        }),
      ),
    );
    if (type === "File" && body.length) out.push(padded(body));
  }
  if (options.end !== false) out.push(Buffer.alloc(1024));
  const tar = Buffer.concat(out);
  return options.gzip ? gzipSync(tar) : tar;
}

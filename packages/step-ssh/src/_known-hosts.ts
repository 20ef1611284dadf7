import { createHash, createHmac } from "node:crypto";

/** One key line of a known_hosts file (OpenSSH format, sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"). */
export interface KnownHostEntry {
  marker?: "@revoked" | "@cert-authority";
  /** The host field as written: a comma list of patterns, or one hashed `|1|salt|hmac`. */
  hosts: string;
  type: string;
  /** The key blob in base64, as in the file. */
  key: string;
  file: string;
  line: number;
}

export type HostKeyVerdict =
  | { status: "known"; entry: KnownHostEntry }
  | { status: "unknown" }
  | { status: "changed"; entries: KnownHostEntry[] }
  | { status: "revoked"; entry: KnownHostEntry };

export function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry["marker"];
    if (fields[0] === "@revoked" || fields[0] === "@cert-authority") {
      marker = fields.shift() as KnownHostEntry["marker"];
    }
    const [hosts, type, key] = fields;
    if (!hosts || !type || !key) return;
    out.push({ ...(marker ? { marker } : {}), hosts, type, key, file, line: i + 1 });
  });
  return out;
}

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Does the entry's host field match `name` (plain patterns with `*`/`?`/`!`, or a hashed `|1|` field)? */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith("|1|")) {
    const [, , salt, hash] = field.split("|");
    if (!salt || !hash) return false;
    const mac = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
    return mac === hash;
  }
  let matched = false;
  for (const pattern of field.split(",")) {
    const negated = pattern.startsWith("!");
    const glob = negated ? pattern.slice(1) : pattern;
    if (globMatch(glob.toLowerCase(), name.toLowerCase())) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

export function verifyHostKey(
  entries: readonly KnownHostEntry[],
  name: string,
  blob: Buffer,
): HostKeyVerdict {
  const key = blob.toString("base64");
  const type = keyType(blob);
  const forHost = entries.filter((e) => hostFieldMatches(e.hosts, name));
  const revoked = entries.find((e) => e.marker === "@revoked" && e.key === key);
  if (revoked) return { status: "revoked", entry: revoked };
  const plain = forHost.filter((e) => !e.marker);
  const known = plain.find((e) => e.key === key);
  if (known) return { status: "known", entry: known };
  if (!plain.length) return { status: "unknown" };
  // a key of another type is not proof of a change, but OpenSSH refuses it too: we asked for the known types
  const sameType = plain.filter((e) => e.type === type);
  return { status: "changed", entries: sameType.length ? sameType : plain };
}

/** Key types known for `name`, to ask the server for those first (as OpenSSH does). */
export function knownTypes(entries: readonly KnownHostEntry[], name: string): string[] {
  const types = new Set<string>();
  for (const e of entries) if (!e.marker && hostFieldMatches(e.hosts, name)) types.add(e.type);
  return [...types];
}

/** `SHA256:<base64 without padding>`, as `ssh-keygen -lf` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** The algorithm name at the start of an SSH public key blob (`ssh-ed25519`, `ssh-rsa`, …). */
export function keyType(blob: Buffer): string {
  if (blob.length < 4) return "unknown";
  const len = blob.readUInt32BE(0);
  return len > 0 && len < 64 && blob.length >= 4 + len
    ? blob.subarray(4, 4 + len).toString("latin1")
    : "unknown";
}

function globMatch(pattern: string, text: string): boolean {
  // iterative * / ? matcher: no regex built from file content
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === "?" || pattern[p] === text[t])) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      mark = t;
    } else if (star !== -1) {
      p = star + 1;
      t = ++mark;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

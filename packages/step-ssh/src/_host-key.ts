import { existsSync, readFileSync } from "node:fs";
import { HostError } from "@atomkit/core";
import type { ConnectionSettings } from "./_connection";
import {
  fingerprint,
  type KnownHostEntry,
  keyType,
  knownHostsName,
  knownTypes,
  parseKnownHosts,
  verifyHostKey,
} from "./_known-hosts";

const SSH2_HOST_KEY_ALGOS = new Set([
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
  "ssh-dss",
]);

/**
 * How a host's key is judged at each connect, by its `hostKey` policy: against known_hosts (read anew
 * each time, so an added line is picked up), a pinned fingerprint, or not at all (with a warning per
 * new key). A refusal is a HOST_KEY HostError with the fingerprint and the line to add.
 */
export class HostKeyCheck {
  private readonly warned = new Set<string>();

  constructor(private readonly s: ConnectionSettings) {}

  /** known_hosts as it is now, the name looked up there, and the key types to ask for first (as ssh(1)). */
  prepare(): { known: KnownHostEntry[]; lookup: string; preferred: string[] } {
    const s = this.s;
    const known = s.hostKey === "known-hosts" ? readKnownHosts(s.knownHosts) : [];
    const lookup = knownHostsName(s.host, s.port);
    const preferred = knownTypes(known, lookup)
      .flatMap((t) => (t === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [t]))
      .filter((t) => SSH2_HOST_KEY_ALGOS.has(t));
    return { known, lookup, preferred };
  }

  /** Undefined when the key is trusted; else why it is refused. */
  check(blob: Buffer, known: KnownHostEntry[], lookup: string): HostError | undefined {
    const s = this.s;
    const fp = fingerprint(blob);
    const type = keyType(blob);
    const line = `${lookup} ${type} ${blob.toString("base64")}`;
    if (s.hostKey === "insecure-accept-any") {
      if (!this.warned.has(fp)) {
        this.warned.add(fp);
        s.warn(
          `[atomkit] WARNING: host key verification is OFF for ${s.name} (hostKey: "insecure-accept-any"): accepted ${type} ${fp} unchecked; anyone on the path can impersonate this host. To verify it, add this line to known_hosts: ${line}`,
        );
      }
      return undefined;
    }
    if (s.hostKey.startsWith("SHA256:")) {
      if (fp === s.hostKey) return undefined;
      return new HostError("HOST_KEY", `host key of ${s.name} does not match the pinned fingerprint`, {
        host: s.name,
        expected: s.hostKey,
        found: `${type} ${fp}`,
        hint: "if the host's key was changed on purpose, pin the new fingerprint; otherwise someone may be intercepting the connection",
      });
    }
    const verdict = verifyHostKey(known, lookup, blob);
    const files = s.knownHosts.join(", ");
    switch (verdict.status) {
      case "known":
        return undefined;
      case "revoked":
        return new HostError("HOST_KEY", `host key of ${s.name} is marked @revoked in known_hosts`, {
          host: s.name,
          found: `${type} ${fp} (${verdict.entry.file}:${verdict.entry.line})`,
          hint: "this key must not be trusted; ask the host's admin",
        });
      case "unknown":
        return new HostError(
          "HOST_KEY",
          `host key of ${s.name} is unknown: ${type} ${fp} is not in ${files}`,
          {
            host: s.name,
            expected: `an entry for ${lookup} in ${files}`,
            found: `${type} ${fp}`,
            hint: `check the fingerprint out of band (on the host: ssh-keygen -lf /etc/ssh/ssh_host_${type.replace(/^ssh-|-.*$/g, "")}_key.pub), then trust it by adding this line to ${s.knownHosts[0]}: ${line} — or run \`ssh-keyscan -p ${s.port} -t ${type} ${s.host} >> ${s.knownHosts[0]}\` (which trusts whatever answers now)`,
          },
        );
      case "changed": {
        const was = verdict.entries
          .map((e) => `${e.type} ${safeFingerprint(e.key)} (${e.file}:${e.line})`)
          .join(", ");
        return new HostError(
          "HOST_KEY",
          `HOST KEY CHANGED for ${s.name}: the server offers ${type} ${fp}, known_hosts has ${was}. Someone may be intercepting the connection (man in the middle), or the host was reinstalled`,
          {
            host: s.name,
            expected: was,
            found: `${type} ${fp}`,
            hint: `if the change is expected, remove the old entry (\`ssh-keygen -R '${lookup}' -f ${verdict.entries[0]?.file}\`) and add: ${line}`,
          },
        );
      }
    }
  }
}

function readKnownHosts(files: readonly string[]): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  for (const file of files) {
    if (existsSync(file)) out.push(...parseKnownHosts(readFileSync(file, "utf8"), file));
  }
  return out;
}

function safeFingerprint(base64: string): string {
  try {
    return fingerprint(Buffer.from(base64, "base64"));
  } catch {
    return "(unreadable key)";
  }
}

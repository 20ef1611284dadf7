import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  fingerprint,
  hostFieldMatches,
  knownHostsName,
  parseKnownHosts,
  verifyHostKey,
} from "../src/_known-hosts";

/** A fake key blob of a given type: `string type` + random bytes, as in the SSH wire format. */
function blob(type: string): Buffer {
  const t = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(t.length);
  return Buffer.concat([len, t, randomBytes(32)]);
}

function hashed(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update(name).digest("base64")}`;
}

describe("known_hosts parsing and matching (OpenSSH format)", () => {
  const ed = blob("ssh-ed25519");
  const other = blob("ssh-ed25519");
  const rsa = blob("ssh-rsa");

  it("names hosts as ssh does: plain on port 22, [host]:port otherwise", () => {
    expect(knownHostsName("web1", 22)).toBe("web1");
    expect(knownHostsName("10.0.0.5", 2222)).toBe("[10.0.0.5]:2222");
  });

  it("matches comma lists, wildcards, negation and hashed entries", () => {
    expect(hostFieldMatches("web1,web2", "web2")).toBe(true);
    expect(hostFieldMatches("*.example.com", "a.example.com")).toBe(true);
    expect(hostFieldMatches("*.example.com,!bad.example.com", "bad.example.com")).toBe(false);
    expect(hostFieldMatches("web?", "web10")).toBe(false);
    expect(hostFieldMatches("[web1]:2222", "web1")).toBe(false);
    expect(hostFieldMatches(hashed("[web1]:2222"), "[web1]:2222")).toBe(true);
    expect(hostFieldMatches(hashed("[web1]:2222"), "[web1]:2223")).toBe(false);
  });

  it("says known, unknown, changed or revoked", () => {
    const file = [
      "# comment",
      `[web1]:2222 ssh-ed25519 ${ed.toString("base64")}`,
      `web2 ssh-ed25519 ${ed.toString("base64")} comment here`,
      `web3 ssh-rsa ${rsa.toString("base64")}`,
      `@revoked * ssh-ed25519 ${other.toString("base64")}`,
      `@cert-authority *.example.com ssh-ed25519 ${ed.toString("base64")}`,
      "garbage",
    ].join("\n");
    const entries = parseKnownHosts(file, "kh");
    expect(entries).toHaveLength(5);
    expect(verifyHostKey(entries, "[web1]:2222", ed)).toMatchObject({ status: "known" });
    expect(verifyHostKey(entries, "web2", ed)).toMatchObject({ status: "known" });
    expect(verifyHostKey(entries, "web1", ed)).toMatchObject({ status: "unknown" });
    expect(verifyHostKey(entries, "a.example.com", ed)).toMatchObject({ status: "unknown" });
    expect(verifyHostKey(entries, "web2", blob("ssh-ed25519"))).toMatchObject({ status: "changed" });
    expect(verifyHostKey(entries, "web3", ed)).toMatchObject({ status: "changed" }); // another type
    expect(verifyHostKey(entries, "web2", other)).toMatchObject({ status: "revoked" });
  });

  it("prints fingerprints like ssh-keygen -lf", () => {
    expect(fingerprint(ed)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

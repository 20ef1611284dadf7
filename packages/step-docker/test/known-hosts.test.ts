import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { matchKnownHosts } from "../src/_connection";

const key = randomBytes(51);
const other = randomBytes(51);
const b64 = (k: Buffer) => k.toString("base64");
const hashed = (name: string) => {
  const salt = randomBytes(20);
  return `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update(name).digest("base64")}`;
};

describe("known_hosts matching (host key verification of the SSH transport)", () => {
  it("trusts a listed key; port 22 is the bare name, other ports [host]:port", () => {
    expect(matchKnownHosts(`10.0.0.5 ssh-ed25519 ${b64(key)}\n`, "10.0.0.5", 22, key)).toBe("trusted");
    expect(matchKnownHosts(`10.0.0.5 ssh-ed25519 ${b64(key)}\n`, "10.0.0.5", 2222, key)).toBe("unknown");
    expect(matchKnownHosts(`[10.0.0.5]:2222 ssh-ed25519 ${b64(key)}\n`, "10.0.0.5", 2222, key)).toBe(
      "trusted",
    );
  });

  it("reads hashed names, lists and wildcards, skips comments and negated patterns", () => {
    const text = [
      "# comment",
      `${hashed("[h.example]:2200")} ssh-ed25519 ${b64(key)}`,
      `a.example,*.corp.example ssh-ed25519 ${b64(other)}`,
      `!bad.corp.example,*.corp.example ssh-ed25519 ${b64(key)}`,
    ].join("\n");
    expect(matchKnownHosts(text, "h.example", 2200, key)).toBe("trusted");
    expect(matchKnownHosts(text, "x.corp.example", 22, key)).toBe("trusted");
    expect(matchKnownHosts(text, "bad.corp.example", 22, key)).toBe("changed");
    expect(matchKnownHosts(text, "a.example", 22, key)).toBe("changed");
    expect(matchKnownHosts(text, "[h.example]", 2200, key)).toBe("unknown");
  });

  it("a changed key is not trusted; a @revoked one is refused even when also listed", () => {
    expect(matchKnownHosts(`h ssh-ed25519 ${b64(other)}`, "h", 22, key)).toBe("changed");
    const text = `h ssh-ed25519 ${b64(key)}\n@revoked h ssh-ed25519 ${b64(key)}\n`;
    expect(matchKnownHosts(text, "h", 22, key)).toBe("revoked");
    expect(matchKnownHosts(`@cert-authority h ssh-ed25519 ${b64(key)}`, "h", 22, key)).toBe("unknown");
  });
});

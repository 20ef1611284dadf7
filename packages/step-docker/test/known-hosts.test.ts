import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { linkError, matchKnownHosts } from "../src/_connection";

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

describe("SSH link errors: AUTH for refused credentials, CONNECTION for an unreachable server", () => {
  const conn = { protocol: "ssh" as const, host: "10.0.0.5", port: 22, username: "deploy" };
  it("maps ssh2's failures to their reasons, naming the daemon", () => {
    const auth = Object.assign(new Error("All configured authentication methods failed"), {
      level: "client-authentication",
    });
    expect(linkError(conn, auth)).toMatchObject({ reason: "AUTH" });
    expect(linkError(conn, auth).message).toContain("ssh://deploy@10.0.0.5:22 refused the credentials");
    const refused = Object.assign(new Error("connect ECONNREFUSED 10.0.0.5:22"), { code: "ECONNREFUSED" });
    expect(linkError(conn, refused)).toMatchObject({ reason: "CONNECTION" });
    const timeout = Object.assign(new Error("Timed out while waiting for handshake"), {
      level: "client-timeout",
    });
    expect(linkError(conn, timeout)).toMatchObject({ reason: "CONNECTION" });
  });
});

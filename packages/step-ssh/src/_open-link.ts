// Opening one SSH connection (a Link): the handshake with its host key check, credentials read at
// each attempt, and the errors a refused or unreachable server becomes. Connection (_connection.ts)
// decides when to open one and retries.
import { HostError } from "@atomkit/core";
import { Client, type ConnectConfig } from "ssh2";
import type { ConnectionSettings, Link } from "./_connection";
import type { HostKeyCheck } from "./_host-key";

/** Opens a link to `s`'s server; `onClosed` is called when it ends or drops (also during the handshake). */
export function openLink(
  s: ConnectionSettings,
  hostKeys: HostKeyCheck,
  id: number,
  onClosed: (link: Link) => void,
): Promise<Link> {
  const client = new Client();
  let refusal: HostError | undefined;
  const { known, lookup, preferred } = hostKeys.prepare();
  let credentials: Partial<ConnectConfig>;
  try {
    credentials = s.credentials();
  } catch (error) {
    return Promise.reject(
      new HostError("AUTH", `cannot read the credentials for ${s.name}: ${(error as Error).message}`, {
        host: s.name,
        cause: error,
        hint: "pass privateKey, privateKeyPath, agent or password in sshHost options",
      }),
    );
  }
  const config: ConnectConfig = {
    host: s.host,
    port: s.port,
    username: s.username,
    ...credentials,
    keepaliveInterval: s.keepaliveIntervalMs,
    keepaliveCountMax: s.keepaliveCountMax,
    readyTimeout: s.readyTimeoutMs,
    // ask for the key types known_hosts has for this host first, as ssh(1) does
    ...(preferred.length ? { algorithms: { serverHostKey: { remove: preferred, prepend: preferred } } } : {}),
    hostVerifier: (blob: Buffer) => {
      refusal = hostKeys.check(blob, known, lookup);
      return !refusal;
    },
  } as ConnectConfig;

  return new Promise<Link>((resolve, reject) => {
    let ready = false;
    const link: Link = { id, client, closed: false };
    const fail = (error: unknown) => {
      if (ready) return;
      ready = true;
      client.end();
      client.destroy();
      reject(refusal ?? connectError(s, error));
    };
    client.on("error", (error: Error) => {
      if (!ready) fail(error);
      // after ready, a socket error is followed by close; in-flight calls see it there
    });
    const dropped = () => {
      link.closed = true;
      onClosed(link);
      if (!ready) fail(new Error("connection closed during the handshake"));
    };
    client.on("end", dropped);
    client.on("close", dropped);
    client.once("ready", () => {
      ready = true;
      resolve(link);
    });
    try {
      client.connect(config);
      // small requests (a stat, a channel open) otherwise wait ~40 ms for Nagle + delayed ACK
      client.setNoDelay(true);
    } catch (error) {
      fail(error);
    }
  });
}

function connectError(s: ConnectionSettings, error: unknown): HostError {
  const e = error as Error & { level?: string; code?: string };
  const message = e?.message ?? String(error);
  if (e?.level === "client-authentication") {
    return new HostError("AUTH", `authentication as ${s.username} on ${s.name} failed (${message})`, {
      host: s.name,
      expected: `${s.credentialsShown} accepted by the server`,
      found: "every method refused",
      hint: `check the user and key: \`ssh -p ${s.port} ${s.username}@${s.host} true\`; the public key must be in ${s.username}'s authorized_keys`,
      cause: error,
    });
  }
  if (/privateKey|passphrase|Cannot parse/i.test(message)) {
    return new HostError("AUTH", `cannot use the private key for ${s.name}: ${message}`, {
      host: s.name,
      hint: "pass an OpenSSH or PEM private key (and its passphrase if it is encrypted)",
      cause: error,
    });
  }
  return new HostError("CONNECTION", `cannot connect to ${s.name}: ${message}`, {
    host: s.name,
    expected: `sshd answering on ${s.host}:${s.port}`,
    found: e?.code ?? message,
    hint: `is the host up and sshd listening on port ${s.port}? Try \`ssh -p ${s.port} ${s.username}@${s.host} true\``,
    cause: error,
  });
}

/** Ends a link gracefully, destroying it after 2 s if the server does not close it. */
export function endLink(link: Link): Promise<void> {
  if (link.closed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      link.client.destroy();
      resolve();
    }, 2_000);
    link.client.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    link.client.end();
  });
}

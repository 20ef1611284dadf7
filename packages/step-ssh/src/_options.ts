import { existsSync, readFileSync } from "node:fs";
import { homedir, userInfo } from "node:os";
import { type Host, HostError } from "@atomkit/core";
import { SSHConfig } from "ssh-config";
import type { ConnectConfig } from "ssh2";
import type { ConnectionSettings, HostKeyPolicy } from "./_connection";
import { expandPath } from "./_utils";

// sshHost's options, and how they become one connection's settings (ssh_config, known_hosts files,
// credentials read at each connect).

/** Where `sshHost` connects, how it authenticates and verifies the server, and its connection's limits. */
export interface SshHostOptions {
  /** Name or address to connect to; with `sshConfig`, a `Host` alias of the config. **Required.** */
  host: string;
  /** @default 22, or the config's `Port` */
  port?: number;
  /** @default the config's `User`, else the local user name */
  username?: string;
  /** Private key text (OpenSSH or PEM). Secret: never shown in errors or logs. */
  privateKey?: string | Buffer;
  /** Path of a private key file, read at each (re)connect. */
  privateKeyPath?: string;
  /** Passphrase of an encrypted private key. Secret. */
  passphrase?: string;
  /** An ssh-agent socket path, or `true` for `$SSH_AUTH_SOCK`. */
  agent?: string | true;
  /** Password authentication. Secret. Prefer keys. */
  password?: string;
  /**
   * known_hosts files the host key is checked against (plain `host`, `[host]:port`, wildcard and
   * hashed `|1|` entries; `@revoked` honoured, `@cert-authority` not supported).
   * @default the config's `UserKnownHostsFile`, else `~/.ssh/known_hosts` and `/etc/ssh/ssh_known_hosts`
   */
  knownHosts?: string | readonly string[];
  /**
   * How the server's key is verified. `"known-hosts"` refuses an unknown or changed key with its
   * fingerprint and the line to add. A `"SHA256:…"` fingerprint pins one key. `"insecure-accept-any"`
   * turns verification off and prints a warning at every new key: for throwaway test hosts only.
   * @default "known-hosts"
   */
  hostKey?: HostKeyPolicy;
  /**
   * Read `HostName`, `Port`, `User`, `IdentityFile` and `UserKnownHostsFile` for `host` from an
   * ssh_config file: `true` for `~/.ssh/config`, or a path. Explicit options win. `Match exec` is not run.
   * @default false
   */
  sshConfig?: boolean | string;
  /**
   * Directory on the remote host for Atomkit's state (locks, backups).
   * @default `~/.atomkit` of the remote user, resolved at the first connection (`/tmp/atomkit-<user>`
   * if the server reports no home). Until then it reads `.atomkit`, which the server resolves against
   * the same home directory; call `await host.ready()` to have the absolute path.
   */
  stateDir?: string;
  /** The host's name in errors, logs and the trail. @default `user@host:port` */
  name?: string;
  /** SSH keep-alive probe interval. 0 turns it off. @default 15 000 */
  keepaliveIntervalMs?: number;
  /** Unanswered probes before the link counts as dropped. @default 3 */
  keepaliveCountMax?: number;
  /** Handshake timeout. @default 20 000 */
  readyTimeoutMs?: number;
  /** Connection attempts after the first, when the network (not a key) fails. @default `{ retries: 3, backoffMs: 250 }`, doubled per attempt */
  reconnect?: { retries?: number; backoffMs?: number };
  /**
   * Exec sessions open at once, beside the SFTP session, the command shell's session and one for a
   * timeout's `kill`: keep it at MaxSessions − 3 (OpenSSH allows 10 by default). @default 7
   */
  maxChannels?: number;
  /** Where the insecure-mode warning goes. @default console.warn */
  warn?: (message: string) => void;
}

/** A Host over one SSH connection; `ready()` connects now (and resolves `stateDir`). */
export interface SshHost extends Host {
  readonly local: false;
  ready(): Promise<void>;
  /** Whether the connection is open right now (it reopens on the next call if not). */
  readonly connected: boolean;
}

/** The settings of the host's connection, checked: what `sshHost` needs besides the options. */
export function resolveOptions(options: SshHostOptions): ConnectionSettings {
  if (!options || typeof options.host !== "string" || !options.host) {
    throw new HostError("OTHER", "sshHost needs a host", {
      expected: "{ host: 'server.example.com', … }",
      found: options?.host,
    });
  }
  const cfg = options.sshConfig ? readSshConfig(options.sshConfig, options.host) : {};
  const hostname = options.host && cfg.hostname ? cfg.hostname : options.host;
  const port = options.port ?? (cfg.port ? Number(cfg.port) : 22);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new HostError("OTHER", `invalid SSH port for ${options.host}`, {
      expected: "an integer 1-65535",
      found: port,
    });
  }
  const username = options.username ?? cfg.user ?? localUser();
  const name = options.name ?? `${username}@${options.host}:${port}`;
  const tokens = { host: hostname, user: username };
  const knownHosts = options.knownHosts
    ? [options.knownHosts].flat().map((f) => expandPath(f, tokens))
    : cfg.userknownhostsfile
      ? cfg.userknownhostsfile.split(/\s+/).map((f) => expandPath(f, tokens))
      : [`${homedir()}/.ssh/known_hosts`, "/etc/ssh/ssh_known_hosts"];
  const hostKey = options.hostKey ?? "known-hosts";
  if (hostKey !== "known-hosts" && hostKey !== "insecure-accept-any" && !hostKey.startsWith("SHA256:")) {
    throw new HostError("OTHER", `invalid hostKey option for ${name}`, {
      expected: '"known-hosts", "insecure-accept-any" or a "SHA256:…" fingerprint',
      found: hostKey,
    });
  }
  const { credentials, shown } = credentialSource(options, cfg.identityfile, tokens);
  return {
    name,
    host: hostname,
    port,
    username,
    credentials,
    credentialsShown: shown,
    knownHosts,
    hostKey,
    keepaliveIntervalMs: options.keepaliveIntervalMs ?? 15_000,
    keepaliveCountMax: options.keepaliveCountMax ?? 3,
    readyTimeoutMs: options.readyTimeoutMs ?? 20_000,
    retries: options.reconnect?.retries ?? 3,
    backoffMs: options.reconnect?.backoffMs ?? 250,
    maxChannels: options.maxChannels ?? 7,
    warn: options.warn ?? ((m) => console.warn(m)),
  };
}

function localUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? "root";
  }
}

interface SshConfigValues {
  hostname?: string;
  port?: string;
  user?: string;
  identityfile?: string[];
  userknownhostsfile?: string;
}

function readSshConfig(source: true | string, alias: string): SshConfigValues {
  const path = source === true ? `${homedir()}/.ssh/config` : source;
  if (!existsSync(path)) {
    if (source === true) return {};
    throw new HostError("ENOENT", `ssh config ${path} not found`, {
      hint: "pass sshConfig: true for ~/.ssh/config, or the path of an existing file",
    });
  }
  const computed = SSHConfig.parse(readFileSync(path, "utf8")).compute(alias, {
    ignoreCase: true,
    matchExec: false,
  });
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
  const many = (v: string | string[] | undefined) => (v === undefined ? undefined : [v].flat());
  const out: SshConfigValues = {};
  const hostname = one(computed.hostname);
  const port = one(computed.port);
  const user = one(computed.user);
  const identity = many(computed.identityfile);
  const known = one(computed.userknownhostsfile);
  if (hostname) out.hostname = hostname.replace(/%h/g, alias);
  if (port) out.port = port;
  if (user) out.user = user;
  if (identity) out.identityfile = identity;
  if (known) out.userknownhostsfile = known;
  return out;
}

function credentialSource(
  o: SshHostOptions,
  identityFiles: string[] | undefined,
  tokens: { host: string; user: string },
): { credentials: () => Partial<ConnectConfig>; shown: string } {
  const agent = o.agent === true ? process.env.SSH_AUTH_SOCK : o.agent;
  if (o.agent === true && !agent) {
    throw new HostError("OTHER", "agent: true but SSH_AUTH_SOCK is not set", {
      hint: "start ssh-agent, or pass the agent socket path or a private key",
    });
  }
  const shown: string[] = [];
  let keyPath = o.privateKeyPath ? expandPath(o.privateKeyPath, tokens) : undefined;
  if (!o.privateKey && !keyPath && !agent && !o.password) {
    const candidates = [
      ...(identityFiles ?? []).map((f) => expandPath(f, tokens)),
      ...(identityFiles ? [] : ["id_ed25519", "id_ecdsa", "id_rsa"].map((f) => `${homedir()}/.ssh/${f}`)),
    ];
    keyPath = candidates.find((f) => existsSync(f));
  }
  if (o.privateKey) shown.push("the given private key");
  if (keyPath) shown.push(`key ${keyPath}`);
  const fallbackAgent =
    !o.privateKey && !keyPath && !o.password ? (agent ?? process.env.SSH_AUTH_SOCK) : agent;
  if (fallbackAgent) shown.push(`ssh-agent at ${fallbackAgent}`);
  if (o.password) shown.push("a password");
  if (!shown.length) {
    throw new HostError("OTHER", `no SSH credentials for ${tokens.user}@${tokens.host}`, {
      expected: "privateKey, privateKeyPath, agent or password (or a default key in ~/.ssh)",
      found: "none",
      hint: "pass privateKeyPath: '~/.ssh/id_ed25519' or start ssh-agent",
    });
  }
  return {
    shown: shown.join(", "),
    credentials: () => ({
      ...(o.privateKey ? { privateKey: o.privateKey } : keyPath ? { privateKey: readFileSync(keyPath) } : {}),
      ...(o.passphrase ? { passphrase: o.passphrase } : {}),
      ...(fallbackAgent ? { agent: fallbackAgent } : {}),
      ...(o.password ? { password: o.password } : {}),
    }),
  };
}

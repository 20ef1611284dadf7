import { createHash, createHmac } from "node:crypto";
import type { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { Agent } from "node:http";
import { createRequire } from "node:module";
import { connect as netConnect, type Socket } from "node:net";
import { homedir } from "node:os";
import type { Duplex } from "node:stream";
import { checkFields, errorReason, HostError, optional } from "@atomkit/core";
import Docker from "dockerode";
import { absolutePath, fail, int, object, optInt, string } from "./_validate";

/** Where the Docker daemon is: a local unix socket (default) or a remote daemon reached over SSH. */
export type DockerConnection = DockerSocketConnection | DockerSshConnection;

export interface DockerSocketConnection {
  /** Default `/var/run/docker.sock`. */
  socketPath?: string;
  /** How long an API call waits for an unreachable daemon to come back (a dockerd restart). Default 30 000. */
  waitMs?: number;
}

export interface DockerSshConnection {
  /**
   * The daemon of a remote machine, reached by running `docker system dial-stdio` over one SSH
   * connection (the docker CLI must be installed there), as `docker -H ssh://…` does.
   */
  protocol: "ssh";
  host: string;
  /** Default 22. */
  port?: number;
  username: string;
  sshOptions?: DockerSshOptions;
  /** As for a socket. Default 30 000. */
  waitMs?: number;
}

export interface DockerSshOptions {
  /**
   * The private key itself. A secret: it never reaches the trail, so `atomkit undo`/`recover` in a new
   * process cannot use it — prefer `privateKeyPath` or `agent`.
   */
  privateKey?: string;
  /** Path of the private key on the machine running Atomkit; read when connecting. */
  privateKeyPath?: string;
  /** Secret. */
  passphrase?: string;
  /** Secret; prefer keys. */
  password?: string;
  /** ssh-agent socket. Default `$SSH_AUTH_SOCK` when no key or password is given. */
  agent?: string;
  /** known_hosts file the server's host key must be listed in. Default `~/.ssh/known_hosts`. */
  knownHosts?: string;
  /** The expected host key, `ssh-ed25519 AAAA…` (as in known_hosts), instead of a known_hosts file. */
  hostKey?: string;
  /** Default 10 000. */
  readyTimeoutMs?: number;
}

/** Dotted param paths of every kind that takes `docker`: kept out of the trail, events and logs. */
export const CONNECTION_SECRETS = [
  "docker.sshOptions.privateKey",
  "docker.sshOptions.passphrase",
  "docker.sshOptions.password",
] as const;

export const DEFAULT_SOCKET = "/var/run/docker.sock";
const DEFAULT_WAIT_MS = 30_000;

export function parseConnection(value: unknown, path = "docker"): DockerConnection {
  if (value === undefined) return { socketPath: DEFAULT_SOCKET };
  const waitMs = optional((v, p) => int(v, p, 0, 3_600_000));
  const o = object(value, path);
  if (o.protocol === undefined) {
    const c = checkFields(o, { socketPath: optional(absolutePath), waitMs }, path);
    return {
      socketPath: c.socketPath ?? DEFAULT_SOCKET,
      ...(c.waitMs !== undefined ? { waitMs: c.waitMs } : {}),
    };
  }
  const c = checkFields(
    o,
    {
      protocol: (v, p) => {
        if (v !== "ssh")
          fail(p, `must be "ssh" (or leave it out for a unix socket), got ${JSON.stringify(v)}`);
        return v;
      },
      host: (v, p) => string(v, p, { pattern: /^[^\s/@]+$/, hint: "a host name or address" }),
      port: (v, p) => optInt(v, p, 1, 65_535, 22),
      username: (v, p) => string(v, p, { pattern: /^[^\s@:]+$/, hint: "a user name" }),
      sshOptions: optional(parseSshOptions),
      waitMs,
    },
    path,
  );
  const conn: DockerSshConnection = {
    protocol: "ssh",
    host: c.host,
    port: c.port,
    username: c.username,
    ...(c.waitMs !== undefined ? { waitMs: c.waitMs } : {}),
  };
  if (c.sshOptions) conn.sshOptions = c.sshOptions;
  return conn;
}

function parseSshOptions(value: unknown, path: string): DockerSshOptions {
  const text = optional((v, p) => string(v, p));
  return checkFields(
    value,
    {
      privateKey: text,
      privateKeyPath: optional(absolutePath),
      passphrase: text,
      password: text,
      agent: optional(absolutePath),
      knownHosts: optional(absolutePath),
      hostKey: optional((v, p) =>
        string(v, p, {
          pattern: /^[a-z0-9@.-]+ [A-Za-z0-9+/=]+( .*)?$/,
          hint: 'the key as in known_hosts, e.g. "ssh-ed25519 AAAAC3Nza…"',
        }),
      ),
      readyTimeoutMs: optional((v, p) => int(v, p, 100, 600_000)),
    },
    path,
  );
}

/** A human name of the daemon, for errors: `unix:///var/run/docker.sock` or `ssh://root@10.0.0.5:22`. */
export function connectionName(conn: DockerConnection): string {
  if ("protocol" in conn) return `ssh://${conn.username}@${conn.host}:${conn.port ?? 22}`;
  return `unix://${conn.socketPath ?? DEFAULT_SOCKET}`;
}

export interface DockerClient {
  docker: Docker;
  /** For errors, e.g. `unix:///var/run/docker.sock`. */
  name: string;
  waitMs: number;
  /** The last failure of the SSH link (a refused host key, a failed dial-stdio), for error messages. */
  linkError(): Error | undefined;
}

// One client per connection per process, reused by every step: for SSH that is one SSH connection with
// an HTTP keep-alive channel per concurrent request, instead of a handshake per API call.
const clients = new Map<string, { client: DockerClient; close: () => void }>();

export function dockerClient(conn: DockerConnection): DockerClient {
  const key = JSON.stringify(conn);
  const found = clients.get(key);
  if (found) return found.client;
  const waitMs = conn.waitMs ?? DEFAULT_WAIT_MS;
  let entry: { client: DockerClient; close: () => void };
  if ("protocol" in conn) {
    const link = new SshLink(conn);
    const agent = new DialStdioAgent(link);
    // docker-modem sends plain HTTP through the given agent; the host name is never resolved
    const docker = new Docker({ ...NO_ENV, protocol: "http", host: "docker", port: 80, agent } as never);
    entry = {
      client: { docker, name: connectionName(conn), waitMs, linkError: () => link.lastError },
      close: () => {
        agent.destroy();
        link.close();
      },
    };
  } else {
    const docker = new Docker({ ...NO_ENV, socketPath: conn.socketPath ?? DEFAULT_SOCKET });
    entry = {
      client: { docker, name: connectionName(conn), waitMs, linkError: () => undefined },
      close: () => {},
    };
  }
  clients.set(key, entry);
  return entry.client;
}

/** Ends every SSH connection the docker steps of this process opened (they do not keep a process alive). */
export function closeDockerConnections(): void {
  for (const { close } of clients.values()) close();
  clients.clear();
}

// docker-modem fills unset options from DOCKER_HOST/DOCKER_CERT_PATH; the step's params alone decide
const NO_ENV = {
  host: undefined,
  port: undefined,
  protocol: "http",
  ca: undefined,
  cert: undefined,
  key: undefined,
  timeout: undefined,
} as const;

// --- SSH transport ---

interface SshChannel extends Duplex {
  stderr: EventEmitter;
}

interface SshClient extends EventEmitter {
  connect(config: Record<string, unknown>): SshClient;
  exec(command: string, callback: (error: Error | undefined, channel: SshChannel) => void): boolean;
  end(): SshClient;
}

let ssh2: { Client: new () => SshClient } | undefined;

// ssh2 is what docker-modem (dockerode's transport) uses for its own ssh protocol; it is loaded from
// there so this package needs no second copy. A direct `ssh2` dependency, when present, wins.
function loadSsh2(): { Client: new () => SshClient } {
  if (ssh2) return ssh2;
  const req = createRequire(import.meta.url);
  try {
    ssh2 = req("ssh2") as typeof ssh2;
  } catch {
    const modem = createRequire(req.resolve("dockerode")).resolve("docker-modem");
    ssh2 = createRequire(modem)("ssh2") as typeof ssh2;
  }
  return ssh2!;
}

class SshLink {
  lastError: Error | undefined;
  private client: Promise<SshClient> | undefined;
  private sock: Socket | undefined;
  private held = 0;

  constructor(private readonly conn: DockerSshConnection) {}

  /** A duplex to the remote daemon's API: `docker system dial-stdio` on one exec channel. */
  async dial(): Promise<Duplex> {
    // the link keeps the process alive from here until the channel is idle (see asSocket)
    this.hold(1);
    let channel: SshChannel;
    try {
      const client = await this.connect();
      channel = await new Promise<SshChannel>((resolve, reject) => {
        client.exec("docker system dial-stdio", (error, ch) => (error ? reject(error) : resolve(ch)));
      });
    } catch (error) {
      this.hold(-1);
      throw error;
    }
    let stderr = "";
    channel.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString("utf8")).slice(-2000);
    });
    channel.on("exit", (code: number | null) => {
      // a channel the agent closes ends quietly; one that could not reach the daemon says why on stderr
      if (code && stderr.trim()) {
        this.lastError = new Error(
          `\`docker system dial-stdio\` exited with code ${code} on ${connectionName(this.conn)}: ${stderr.trim() || "(no output)"}`,
        );
      }
    });
    return this.asSocket(channel);
  }

  close(): void {
    const pending = this.client;
    this.client = undefined;
    void pending?.then((c) => c.end()).catch(() => {});
  }

  // http.Agent treats its connections as sockets: keep-alive calls ref/unref/setKeepAlive on them.
  // ref/unref are counted so the TCP link keeps the process alive only while a request is in flight.
  private asSocket(channel: SshChannel): Duplex {
    let held = true; // the hold taken by dial()
    const ch = channel as SshChannel & Record<string, unknown>;
    ch.setKeepAlive = () => ch;
    ch.setNoDelay = () => ch;
    ch.setTimeout = () => ch;
    ch.ref = () => {
      if (!held) {
        held = true;
        this.hold(1);
      }
      return ch;
    };
    ch.unref = () => {
      if (held) {
        held = false;
        this.hold(-1);
      }
      return ch;
    };
    channel.once("close", () => (ch.unref as () => void)());
    return channel;
  }

  private hold(delta: number): void {
    this.held += delta;
    if (this.held > 0) this.sock?.ref();
    else this.sock?.unref();
  }

  private connect(): Promise<SshClient> {
    if (this.client !== undefined) return this.client;
    const { conn } = this;
    const o = conn.sshOptions ?? {};
    const attempt = new Promise<SshClient>((resolve, reject) => {
      const { Client } = loadSsh2();
      const client = new Client();
      const verify = hostKeyVerifier(conn);
      // Nagle plus delayed ACKs cost ~40 ms per API call over dial-stdio
      const sock = netConnect(conn.port ?? 22, conn.host);
      sock.setNoDelay(true);
      this.sock = sock;
      if (this.held <= 0) sock.unref();
      let ready = false;
      client.on("error", (error: Error) => {
        const e = verify.refused() ?? linkError(conn, error);
        // a refused host key or failed login will not heal by waiting for the daemon
        if (e.reason !== "CONNECTION") Object.defineProperty(e, "permanent", { value: true });
        this.lastError = e;
        if (this.client === attempt) this.client = undefined;
        if (!ready) reject(e);
      });
      client.once("close", () => {
        if (this.client === attempt) this.client = undefined;
      });
      client.once("ready", () => {
        ready = true;
        this.lastError = undefined;
        resolve(client);
      });
      let privateKey: string | Buffer | undefined = o.privateKey;
      if (!privateKey && o.privateKeyPath) {
        try {
          privateKey = readFileSync(o.privateKeyPath);
        } catch (error) {
          const reason = errorReason(error);
          const e = new HostError(
            reason === "ENOENT" || reason === "EACCES" ? reason : "OTHER",
            `cannot read the SSH key ${o.privateKeyPath}`,
            {
              host: connectionName(conn),
              cause: error,
              hint: "fix docker.sshOptions.privateKeyPath",
            },
          );
          Object.defineProperty(e, "permanent", { value: true });
          this.lastError = e;
          this.client = undefined;
          reject(e);
          sock.destroy();
          return;
        }
      }
      const agent = o.agent ?? (!privateKey && !o.password ? process.env.SSH_AUTH_SOCK : undefined);
      client.connect({
        sock,
        username: conn.username,
        ...(privateKey ? { privateKey } : {}),
        ...(o.passphrase ? { passphrase: o.passphrase } : {}),
        ...(o.password ? { password: o.password } : {}),
        ...(agent ? { agent } : {}),
        hostVerifier: verify.check,
        readyTimeout: o.readyTimeoutMs ?? 10_000,
      });
    });
    this.client = attempt;
    attempt.catch(() => {
      if (this.client === attempt) this.client = undefined;
    });
    return attempt;
  }
}

class DialStdioAgent extends Agent {
  constructor(private readonly link: SshLink) {
    super({ keepAlive: true, maxSockets: 8 });
  }

  // Node's Agent calls this for every new connection; a callback-style result is allowed.
  override createConnection(
    _options: unknown,
    callback: (error: Error | null, socket?: Duplex) => void,
  ): undefined {
    this.link.dial().then(
      (socket) => callback(null, socket),
      (error: Error) => callback(error),
    );
    return undefined;
  }
}

/** AUTH: the server refused every credential offered; CONNECTION: it could not be reached, or the link dropped. */
export function linkError(conn: DockerSshConnection, error: Error): HostError {
  const auth =
    (error as { level?: unknown }).level === "client-authentication" ||
    /authentication methods failed|All configured authentication/i.test(error.message);
  if (auth) {
    return new HostError(
      "AUTH",
      `the SSH server at ${connectionName(conn)} refused the credentials: ${error.message}`,
      {
        host: connectionName(conn),
        cause: error,
        hint: "check docker.username and the key (sshOptions.privateKeyPath, agent) the server accepts",
      },
    );
  }
  return new HostError(
    "CONNECTION",
    `cannot reach the Docker daemon at ${connectionName(conn)}: ${error.message}`,
    {
      host: connectionName(conn),
      cause: error,
      hint: "check that sshd answers on docker.host:docker.port and that the docker CLI is installed there",
    },
  );
}

// --- Host key verification: a known_hosts file or a pinned key; an unknown key is refused ---

function hostKeyVerifier(conn: DockerSshConnection) {
  const o = conn.sshOptions ?? {};
  let refusal: HostError | undefined;
  const port = conn.port ?? 22;
  const check = (key: Buffer): boolean => {
    const shown = `${keyType(key)} ${fingerprint(key)}`;
    const name = port === 22 ? conn.host : `[${conn.host}]:${port}`;
    if (o.hostKey) {
      const expected = Buffer.from(o.hostKey.split(" ")[1] ?? "", "base64");
      if (expected.equals(key)) return true;
      refusal = new HostError("HOST_KEY", "the SSH host key of the Docker host is not the pinned one", {
        host: connectionName(conn),
        expected: `${o.hostKey.split(" ")[0]} ${fingerprint(expected)}`,
        found: shown,
        hint: "if the host was re-keyed on purpose, update docker.sshOptions.hostKey; otherwise do not connect",
      });
      return false;
    }
    const file = o.knownHosts ?? `${homedir()}/.ssh/known_hosts`;
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      // a missing file lists no keys: refused below like any unknown key
    }
    const verdict = matchKnownHosts(text, conn.host, port, key);
    if (verdict === "trusted") return true;
    refusal = new HostError(
      "HOST_KEY",
      verdict === "revoked"
        ? `the SSH host key of ${name} is marked @revoked in ${file}`
        : verdict === "changed"
          ? `the SSH host key of ${name} does not match ${file}: it changed (or someone is in between)`
          : `the SSH host key of ${name} is unknown: it is not in ${file}`,
      {
        host: connectionName(conn),
        expected: `a key listed for ${name} in ${file}`,
        found: shown,
        hint:
          verdict === "unknown"
            ? `verify the fingerprint out of band, then trust it: ssh-keyscan -p ${port} ${conn.host} >> ${file} (or set docker.sshOptions.hostKey)`
            : `if the host was re-keyed on purpose, replace its line in ${file}; otherwise do not connect`,
      },
    );
    return false;
  };
  return { check, refused: () => refusal };
}

/** `trusted` when a line lists this host and key; `changed` when it lists the host with other keys only. */
export function matchKnownHosts(
  text: string,
  host: string,
  port: number,
  key: Buffer,
): "trusted" | "changed" | "revoked" | "unknown" {
  const name = port === 22 ? host : `[${host}]:${port}`;
  let listed = false;
  let trusted = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    let fields = line.split(/\s+/);
    let marker = "";
    if (fields[0]?.startsWith("@")) {
      marker = fields[0];
      fields = fields.slice(1);
    }
    const [hosts, , blob] = fields;
    if (!hosts || !blob || marker === "@cert-authority") continue;
    if (!hostsMatch(hosts, name)) continue;
    const same = Buffer.from(blob, "base64").equals(key);
    if (marker === "@revoked") {
      if (same) return "revoked";
      continue;
    }
    listed = true;
    if (same) trusted = true;
  }
  return trusted ? "trusted" : listed ? "changed" : "unknown";
}

function hostsMatch(list: string, name: string): boolean {
  if (list.startsWith("|1|")) {
    const [, , salt, hash] = list.split("|");
    if (!salt || !hash) return false;
    const mac = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
    return mac === hash;
  }
  let hit = false;
  for (const pattern of list.split(",")) {
    const negated = pattern.startsWith("!");
    const p = negated ? pattern.slice(1) : pattern;
    const re = new RegExp(
      `^${p
        .replace(/[.+^${}()|[\]\\]/g, "\\$&")
        .replace(/\*/g, ".*")
        .replace(/\?/g, ".")}$`,
    );
    if (re.test(name)) {
      if (negated) return false;
      hit = true;
    }
  }
  return hit;
}

function fingerprint(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

function keyType(key: Buffer): string {
  if (key.length < 4) return "unknown";
  const n = key.readUInt32BE(0);
  return key.subarray(4, 4 + n).toString("latin1");
}

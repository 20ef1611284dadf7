import { Agent } from "node:http";
import type { Duplex } from "node:stream";
import { type Host, HostError } from "@atomkit/core";
import { absolutePath, checkFields, integer, optional, ParamsFieldError } from "@atomkit/core/kit";
import Docker from "dockerode";

/**
 * Which daemon, on the step's host: its API socket there. The host decides the machine: on
 * `localHost()` the socket is opened here; on `sshHost(…)` (@atomkit/step-ssh) it is reached over that
 * host's one SSH connection (`Host.connect({ path })`), so the host is described once, with one
 * known_hosts check, for its files, processes and containers alike.
 */
export interface DockerConnection {
  /** The daemon's unix socket on the step's host. Default `/var/run/docker.sock`. */
  socketPath?: string;
  /** How long an API call waits for an unreachable daemon to come back (a dockerd restart). Default 30 000. */
  waitMs?: number;
}

/**
 * Dotted param paths of every kind that takes `docker`: kept out of the trail, events and logs. The SSH
 * fields are refused now, but a refused credential must not be shown either.
 */
export const CONNECTION_SECRETS = [
  "docker.sshOptions.privateKey",
  "docker.sshOptions.passphrase",
  "docker.sshOptions.password",
] as const;

export const DEFAULT_SOCKET = "/var/run/docker.sock";
const DEFAULT_WAIT_MS = 30_000;
/** The fields of the SSH transport this package had: the step's host reaches a remote daemon now. */
const SSH_FIELDS = ["protocol", "host", "port", "username", "sshOptions"] as const;

export function parseConnection(value: unknown, path = "docker"): DockerConnection {
  if (value === undefined) return { socketPath: DEFAULT_SOCKET };
  const o = value as Record<string, unknown>;
  const gone = o !== null && typeof o === "object" && SSH_FIELDS.find((k) => o[k] !== undefined);
  if (gone) {
    throw new ParamsFieldError(
      `${path}.${gone}`,
      "is no longer supported: a remote daemon is reached through the step's host. Run the step on " +
        "sshHost({ host, port, username, privateKeyPath, knownHosts }) from @atomkit/step-ssh (e.g. " +
        "run(atom, { host })) and drop docker.protocol/host/port/username/sshOptions; keep " +
        "docker.socketPath for a socket other than /var/run/docker.sock on that machine",
    );
  }
  const c = checkFields(
    o,
    {
      socketPath: optional(absolutePath),
      waitMs: optional((v, p) => integer(v, p, { min: 0, max: 3_600_000 })),
    },
    path,
  );
  return {
    socketPath: c.socketPath ?? DEFAULT_SOCKET,
    ...(c.waitMs !== undefined ? { waitMs: c.waitMs } : {}),
  };
}

export interface DockerClient {
  docker: Docker;
  /** For errors, e.g. `unix:///var/run/docker.sock` or `unix:///var/run/docker.sock on root@10.0.0.5:22`. */
  name: string;
  waitMs: number;
  /** The last failure to open a stream to the daemon through the host, for error messages. */
  linkError(): Error | undefined;
}

// One client per host and socket, reused by every step on that host: over SSH, an HTTP keep-alive
// channel per concurrent request on the host's connection, instead of a channel per API call.
const clients = new WeakMap<Host, Map<string, DockerClient>>();

export function dockerClient(host: Host, conn: DockerConnection): DockerClient {
  const byHost = clients.get(host) ?? new Map<string, DockerClient>();
  clients.set(host, byHost);
  const socketPath = conn.socketPath ?? DEFAULT_SOCKET;
  const waitMs = conn.waitMs ?? DEFAULT_WAIT_MS;
  const key = `${waitMs} ${socketPath}`;
  const found = byHost.get(key);
  if (found) return found;
  let client: DockerClient;
  if (host.local) {
    // this machine: docker-modem opens the socket itself
    const docker = new Docker({ ...NO_ENV, socketPath });
    client = { docker, name: `unix://${socketPath}`, waitMs, linkError: () => undefined };
  } else {
    const agent = new HostAgent(host, socketPath);
    // docker-modem sends plain HTTP through the given agent; the host name is never resolved
    const docker = new Docker({ ...NO_ENV, protocol: "http", host: "docker", port: 80, agent } as never);
    client = {
      docker,
      name: `unix://${socketPath} on ${host.name}`,
      waitMs,
      linkError: () => agent.lastError,
    };
  }
  byHost.set(key, client);
  return client;
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

const unreachableErrors = new WeakSet<object>();

/** True for a stream the host could not open (no socket there, refused, link down): worth waiting. */
export function daemonUnreachable(error: unknown): boolean {
  return typeof error === "object" && error !== null && unreachableErrors.has(error);
}

/** An HTTP agent whose connections are streams to the daemon's socket opened by the host. */
class HostAgent extends Agent {
  lastError: Error | undefined;

  constructor(
    private readonly host: Host,
    private readonly socketPath: string,
  ) {
    super({ keepAlive: true, maxSockets: 8 });
  }

  // Node's Agent calls this for every new connection; a callback-style result is allowed.
  override createConnection(
    _options: unknown,
    callback: (error: Error | null, socket?: Duplex) => void,
  ): undefined {
    this.host.connect({ path: this.socketPath }).then(
      (stream) => {
        this.lastError = undefined;
        callback(null, asSocket(stream));
      },
      (error: Error) => {
        // a refused host key or login will not heal by waiting for the daemon to come back
        if (error instanceof HostError && (error.reason === "HOST_KEY" || error.reason === "AUTH")) {
          Object.defineProperty(error, "permanent", { value: true });
        } else if (error && typeof error === "object") unreachableErrors.add(error);
        this.lastError = error;
        callback(error);
      },
    );
    return undefined;
  }
}

/**
 * http.Agent treats its connections as sockets (keep-alive calls setKeepAlive, ref and unref on them);
 * an SSH channel has none of these. Its liveness is the host's connection's, closed with the host.
 */
function asSocket(stream: Duplex): Duplex {
  const s = stream as Duplex & Record<string, unknown>;
  for (const method of ["setKeepAlive", "setNoDelay", "setTimeout", "ref", "unref"]) {
    if (typeof s[method] !== "function") s[method] = () => s;
  }
  return stream;
}

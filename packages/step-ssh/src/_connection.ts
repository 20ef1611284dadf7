import { HostError } from "@atomkit/core";
import { sleep } from "@atomkit/core/kit";
import type { Client, ConnectConfig, SFTPWrapper } from "ssh2";
import { handshakes } from "./_handshakes";
import { HostKeyCheck } from "./_host-key";
import { endLink, openLink } from "./_open-link";
import { call, looksLikeLinkError } from "./_utils";

/**
 * How `sshHost` verifies the server's key: against known_hosts files, pinned to one `SHA256:…`
 * fingerprint, or not at all (`insecure-accept-any`, for throwaway test hosts). See `SshHostOptions.hostKey`.
 */
export type HostKeyPolicy = "known-hosts" | "insecure-accept-any" | `SHA256:${string}`;

export interface ConnectionSettings {
  /** `user@host:port`, used in every error. */
  name: string;
  host: string;
  port: number;
  username: string;
  /** Credentials, read at each (re)connect so a rotated key file is picked up. */
  credentials: () => Partial<ConnectConfig>;
  /** Shown in the error when no credential worked. */
  credentialsShown: string;
  knownHosts: readonly string[];
  hostKey: HostKeyPolicy;
  keepaliveIntervalMs: number;
  keepaliveCountMax: number;
  readyTimeoutMs: number;
  retries: number;
  backoffMs: number;
  maxChannels: number;
  warn: (message: string) => void;
}

/** One live SSH connection. A dropped one is never reused: the next call opens a new Link. */
export interface Link {
  readonly id: number;
  readonly client: Client;
  closed: boolean;
  sftp?: Promise<SFTPWrapper>;
}

/**
 * The single SSH connection of a host: opened on first use, shared by every exec channel, one SFTP
 * session and the forwarded streams; reopened (bounded retries with backoff) on the call after a
 * drop. Operations running when the link drops fail with reason `CONNECTION`. Its host key is judged by
 * `HostKeyCheck` (`_host-key.ts`); handshakes wait for a slot of the process-wide limit (`_handshakes.ts`).
 */
export class Connection {
  private link: Link | undefined;
  private opening: Promise<Link> | undefined;
  private links = 0;
  private active = 0;
  private readonly queue: Array<() => void> = [];
  private readonly hostKeys: HostKeyCheck;
  private readonly drops = new WeakSet<HostError>();
  /** Called once per new link, before it is handed out (e.g. to learn the remote home directory). */
  onLink: ((link: Link) => Promise<void>) | undefined;

  constructor(readonly s: ConnectionSettings) {
    this.hostKeys = new HostKeyCheck(s);
  }

  get connected(): boolean {
    return !!this.link && !this.link.closed;
  }

  async get(): Promise<Link> {
    if (this.link && !this.link.closed) return this.link;
    this.opening ??= this.open().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  /** The link's SFTP session, opened lazily and reopened if the server closed it. */
  async sftp(link: Link): Promise<SFTPWrapper> {
    if (!link.sftp) {
      const opening = call<SFTPWrapper>((cb) => link.client.sftp(cb)).then((sftp) => {
        let ended = false;
        const gone = () => {
          ended = true;
          if (link.sftp === opening) delete link.sftp;
        };
        sftp.on("end", gone);
        sftp.on("close", gone);
        sftp.on("error", () => {});
        return guardSftp(sftp, () => ended || link.closed);
      });
      link.sftp = opening;
      opening.catch(() => {
        if (link.sftp === opening) delete link.sftp;
      });
    }
    try {
      return await link.sftp;
    } catch (error) {
      if (this.isLinkFailure(error, link)) throw this.linkError("open the SFTP session", error, link);
      throw new HostError(
        "OTHER",
        `cannot open an SFTP session on ${this.s.name}: ${(error as Error).message}`,
        {
          host: this.s.name,
          cause: error,
          hint: "the server must offer the sftp subsystem (`Subsystem sftp …` in sshd_config)",
        },
      );
    }
  }

  /** Runs `fn` holding one of `maxChannels` session slots: OpenSSH refuses more than MaxSessions (10). */
  async withChannel<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.s.maxChannels) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    }
  }

  /** A HostError for an operation that failed because the link failed under it. */
  linkError(what: string, error: unknown, link?: Link): HostError {
    if (error instanceof HostError) return error;
    const message = error instanceof Error ? error.message : String(error);
    const failure = new HostError("CONNECTION", `${what} failed: the SSH connection dropped (${message})`, {
      host: this.s.name,
      cause: error,
      hint: link
        ? "the next operation reconnects; whether the interrupted operation took effect is unknown, so observe (check) before trusting it"
        : "check that the host is up and sshd is running",
    });
    if (link) this.drops.add(failure);
    return failure;
  }

  /**
   * Whether `error` says a link dropped under a call that had it (so a new link may well work), not
   * that no link could be opened (reconnecting was tried already, with its retries).
   */
  droppedUnder(error: unknown): boolean {
    return error instanceof HostError && this.drops.has(error);
  }

  /** True when `error` came from a link that dropped (or looks like it). */
  isLinkFailure(error: unknown, link: Link): boolean {
    return link.closed || looksLikeLinkError(error);
  }

  /** Ends the connection; a later call opens a new one. */
  async close(): Promise<void> {
    if (this.opening) await this.opening.catch(() => {});
    const link = this.link;
    this.link = undefined;
    if (link) await endLink(link);
  }

  // --- Internal ---

  private async open(): Promise<Link> {
    let last: HostError | undefined;
    for (let attempt = 0; attempt <= this.s.retries; attempt++) {
      if (attempt > 0) await sleep(this.s.backoffMs * 2 ** (attempt - 1));
      try {
        // only the handshake holds a slot: not the backoff above, nor what runs on the link after
        const link = await handshakes.run(() =>
          openLink(this.s, this.hostKeys, ++this.links, (closed) => {
            if (this.link === closed) this.link = undefined;
          }),
        );
        try {
          await this.onLink?.(link);
        } catch (error) {
          // a link never handed out is closed here, or its socket stays open until the process exits
          await endLink(link);
          throw error;
        }
        this.link = link;
        return link;
      } catch (error) {
        last = error as HostError;
        // a refused key or credential will be refused again: only the network is worth retrying
        if (last.reason !== "CONNECTION") break;
      }
    }
    throw last;
  }
}

/**
 * ssh2 fails pending SFTP requests when the session ends, but a request sent after that waits for an
 * answer forever: fail those at once.
 */
function guardSftp(sftp: SFTPWrapper, dead: () => boolean): SFTPWrapper {
  return new Proxy(sftp, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const cb = args.at(-1);
        if (dead() && typeof cb === "function") {
          process.nextTick(cb, new Error("No response from server (the SSH connection is closed)"));
          return undefined;
        }
        return value.apply(target, args);
      };
    },
  });
}

import type { Duplex } from "node:stream";
import { type ConnectOptions, type ConnectTarget, HostError } from "@atomkit/core";
import { connectTarget } from "@atomkit/core/kit";
import type { ClientChannel } from "ssh2";
import type { Connection } from "./_connection";

/**
 * Host.connect over SSH: a `direct-tcpip` channel to a port, or a `direct-streamlocal@openssh.com`
 * channel to a unix socket, on the host's one connection. The server opens the stream, so addresses are
 * as the host sees them.
 */
export async function forward(
  conn: Connection,
  to: ConnectTarget | number,
  opts: ConnectOptions & { hostname?: string } = {},
): Promise<Duplex> {
  const target = connectTarget(to, opts);
  const shown = "path" in target ? target.path : `${target.hostname}:${target.port}`;
  opts.signal?.throwIfAborted();
  const link = await conn.get();
  const channel = await new Promise<ClientChannel>((resolve, reject) => {
    const done = (err: Error | undefined, ch: ClientChannel) => {
      if (!err) return resolve(ch);
      reject(
        conn.isLinkFailure(err, link)
          ? conn.linkError(`connect ${shown}`, err, link)
          : new HostError("OTHER", `connect ${shown} failed: ${err.message}`, {
              host: conn.s.name,
              cause: err,
              expected: `a server listening on ${shown} (as seen from ${conn.s.name})`,
              hint: `is the service up? (sshd's ${"path" in target ? "AllowStreamLocalForwarding" : "AllowTcpForwarding"} must also permit it)`,
            }),
      );
    };
    if ("path" in target) link.client.openssh_forwardOutStreamLocal(target.path, done);
    else link.client.forwardOut("127.0.0.1", 0, target.hostname, target.port, done);
  });
  if (opts.signal) {
    const onAbort = () => channel.destroy();
    opts.signal.addEventListener("abort", onAbort, { once: true });
    channel.once("close", () => opts.signal?.removeEventListener("abort", onAbort));
  }
  return channel as unknown as Duplex;
}

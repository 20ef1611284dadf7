import { breakLease, readLease } from "@atomkit/core/kit";
import type { Context } from "../context";
import { EXIT } from "../exit-codes";

/** `atomkit unlock <host> [--yes]`: shows who holds the lock; removes it only with --yes. */
export async function unlockCommand(ctx: Context, hostName: string): Promise<number> {
  const host = await (await ctx.hosts()).get(hostName);
  const name = ctx.flags.lock ?? "deploy";
  // the lease this host's runs take under that name (its own per host key)
  const lease = host.lockName(name);
  const holder = await readLease(host, lease);
  if (!holder) {
    ctx.io.stdout.write(`no lock "${name}" on ${host.name}\n`);
    return EXIT.ok;
  }
  ctx.io.stdout.write(
    `lock "${name}" on ${host.name} is held by ${holder.owner} (pid ${holder.pid} on ${holder.machine}) since ${holder.startedAt}; last heartbeat ${holder.heartbeatAt}${holder.stale ? " (stale)" : " (alive)"}${holder.note ? `; ${holder.note}` : ""}\n`,
  );
  if (!ctx.flags.yes) {
    ctx.io.stdout.write(
      `to remove it, run again with --yes (make sure that run is dead; then \`atomkit recover\` its trail)\n`,
    );
    return EXIT.locked;
  }
  await breakLease(host, lease);
  ctx.io.stdout.write(`removed\n`);
  return EXIT.ok;
}

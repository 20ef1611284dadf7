import type { Host } from "@atomkit/core";
import { readBootId } from "./_proc";
import { checkState, type Evidence, type Launch, type Output } from "./_state";

/**
 * The launch record: what `process.start` (and `process.stop`'s undo) started, written beside the pid
 * file. It is how a later observe knows the launch of a process Atomkit started (the directory it was
 * started in, the variables it was given) rather than what /proc shows now. It names the pid, start
 * time and boot it belongs to: a record of any other process is ignored. It never holds a secret value.
 */
export const recordPath = (pidFile: string) => `${pidFile}.launch.json`;

interface LaunchRecord extends Evidence {
  v: 1;
  launch: Launch;
  output: Output;
}

export async function writeRecord(
  host: Host,
  pidFile: string,
  ev: Omit<Evidence, "bootId">,
  launch: Launch,
  output: Output,
): Promise<void> {
  const record: LaunchRecord = { v: 1, ...ev, bootId: await readBootId(host), launch, output };
  await host.writeFile(recordPath(pidFile), `${JSON.stringify(record)}\n`);
}

/** The record of exactly this process, or `null` (none, unreadable, or another process's). */
export async function readRecord(
  host: Host,
  pidFile: string,
  ev: Evidence,
): Promise<{ launch: Launch; output: Output } | null> {
  let record: LaunchRecord;
  try {
    record = JSON.parse((await host.readFile(recordPath(pidFile))).toString("utf8")) as LaunchRecord;
    if (
      record?.v !== 1 ||
      record.pid !== ev.pid ||
      record.startTime !== ev.startTime ||
      record.bootId !== ev.bootId
    )
      return null;
    checkState({ running: true, ...ev, launch: record.launch, recorded: true, output: record.output });
  } catch {
    return null;
  }
  return { launch: record.launch, output: record.output };
}

/** Removes the record when it still belongs to `pid`: another start may have written it since. */
export async function removeRecordIf(host: Host, pidFile: string, pid: number): Promise<void> {
  try {
    const record = JSON.parse((await host.readFile(recordPath(pidFile))).toString("utf8")) as LaunchRecord;
    if (record?.pid === pid) await host.rm(recordPath(pidFile), { force: true });
  } catch {
    // none, or unreadable: nothing of ours to remove
  }
}

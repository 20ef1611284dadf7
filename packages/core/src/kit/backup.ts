// Backups of file contents an undo puts back: content-addressed under the host's state directory, so
// the recorded state (a sha256) is all an undo in a new process needs.
import { posix } from "node:path";
import { show } from "../fields";
import type { Host } from "../host";
import { fail } from "./fail";
import { clip, tempBeside } from "./names";

const SHA256_RE = /^[0-9a-f]{64}$/;
const backupsDir = (host: Host) => posix.join(host.stateDir, "backups");

/**
 * Keeps the current bytes of the regular file at `path` under `<host.stateDir>/backups/<sha256>` and
 * returns the sha256: record it in the step's state, and undo needs nothing else (`restoreBackup`).
 * Content-addressed, so keeping the same bytes twice stores them once. The layout and metadata are those
 * of @atomkit/step-fs's own backups, so its `emptyTrash()` retention removes these too.
 *
 * By default the backup is a hard link (no space used, works on a full disk): the file must then be
 * replaced by rename (as `host.writeFile` does), never written in place, or the backup changes with it
 * (`restoreBackup` would then refuse it as damaged). `copy: true` keeps an independent copy instead.
 * Returns null when nothing is at `path`; throws on anything but a regular file.
 */
export async function keepBackup(
  host: Host,
  path: string,
  options: { copy?: boolean } = {},
): Promise<{ sha256: string } | null> {
  const st = await host.lstat(path);
  if (!st) return null;
  if (st.type !== "file") {
    throw fail(`cannot back up ${show(path)}: it is not a regular file`, {
      expected: "a regular file",
      found: `a ${st.type}`,
      hint: "keepBackup keeps file contents only; move a directory aside (rename) to undo its removal",
    });
  }
  const dir = backupsDir(host);
  await host.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = tempBeside(posix.join(dir, "keep"));
  try {
    const ln = options.copy ? null : await host.exec(["ln", "--", path, tmp], { reject: false });
    if (ln?.code !== 0) await host.exec(["cp", "--", path, tmp]);
    // named by what was kept, not by a hash taken before: a file replaced meanwhile is kept as it was taken
    const sha256 = await host.hash(tmp);
    const dest = posix.join(dir, sha256);
    const existing = await host.lstat(dest);
    if (existing?.type === "file" && (await host.hash(dest)) === sha256) {
      await host.rm(tmp, { force: true });
    } else {
      if (existing) await host.rm(dest, { recursive: true, force: true }); // damaged: replace it
      await host.rename(tmp, dest);
    }
    const meta = `${JSON.stringify({ usedAt: new Date().toISOString(), path })}\n`;
    await host.writeFile(posix.join(dir, `${sha256}.json`), meta, { mode: 0o600 });
    return { sha256 };
  } catch (error) {
    await host.rm(tmp, { force: true }).catch(() => {});
    throw error;
  }
}

/**
 * Puts the bytes kept by `keepBackup` back at `path`, atomically: the backup is linked (or, across
 * filesystems, copied) to a temporary name beside `path`, given `mode` if set, and renamed over it. A
 * reader sees the old file or the restored one, never a mix. Refuses, changing nothing, when `sha256`
 * is not a sha256 (it comes from a trail: evidence, never a command) or the backup is missing or damaged.
 */
export async function restoreBackup(
  host: Host,
  sha256: string,
  path: string,
  options: { mode?: number } = {},
): Promise<void> {
  if (typeof sha256 !== "string" || !SHA256_RE.test(sha256)) {
    throw fail(`cannot restore ${show(path)}: not a backup id`, {
      expected: "64 lowercase hex digits (a sha256 keepBackup returned)",
      found: show(sha256),
      hint: "the recorded state was edited or written by something else; nothing was changed",
    });
  }
  const backup = posix.join(backupsDir(host), sha256);
  const st = await host.lstat(backup);
  const actual = st?.type === "file" ? await host.hash(backup) : null;
  if (actual !== sha256) {
    throw fail(`the backup for ${show(path)} is ${st ? "damaged" : "missing"}`, {
      expected: `a file with sha256 ${sha256} at ${show(backup)}`,
      found: st ? `sha256 ${actual ?? `a ${st.type}`}` : "nothing",
      hint: "backups are removed by emptyTrash() after their retention; restore the old file by hand",
    });
  }
  const tmp = tempBeside(path);
  try {
    const ln = await host.exec(["ln", "--", backup, tmp], { reject: false, env: { LC_ALL: "C" } });
    if (ln.code !== 0) {
      // a copy only where a link cannot be made (another filesystem, links refused): never on ENOSPC
      if (!/cross-device|Operation not permitted/i.test(ln.stderr)) {
        throw fail(`cannot link the backup ${show(backup)} into place`, {
          expected: `a hard link ${show(tmp)} to the backup`,
          found: clip(ln.stderr.trim(), 500) || `ln exited with code ${ln.code}`,
          hint: /No space/i.test(ln.stderr)
            ? "the directory needs room for one more name: free a little space on that filesystem, then undo again"
            : "check the permissions of the file's directory and of the backups under the state directory",
        });
      }
      await host.exec(["cp", "--", backup, tmp]);
    }
    if (options.mode !== undefined) await host.chmod(tmp, options.mode);
    await host.rename(tmp, path);
  } catch (error) {
    await host.rm(tmp, { force: true }).catch(() => {});
    throw error;
  }
}

import { execFileSync } from "node:child_process";
import { closeSync, openSync, rmSync, writeSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

// A real full disk: a tiny tmpfs mounted for the test (root only). Off CI a non-root run skips loudly;
// under CI=true (root there) a failed mount fails the suite instead of hiding it.

const root = process.getuid?.() === 0;

/** True when the suite must skip (not root, off CI); throws under CI=true. */
export function noTmpfs(): boolean {
  if (root) return false;
  const message = "mounting a tmpfs needs root";
  if (process.env.CI === "true" || process.env.CI === "1") throw new Error(`CI=true and ${message}`);
  console.warn(`\n!!! SKIPPING full-disk tests: ${message}\n`);
  return true;
}

export interface Tmpfs {
  dir: string;
  /** Writes a filler file until the disk is full (ENOSPC); returns its path. */
  fill(name?: string): string;
  /** Removes every filler file. */
  free(): void;
  unmount(): Promise<void>;
}

/** Mounts a tmpfs of `size` (e.g. "64k") on a new temp dir. */
export async function mountTmpfs(size = "64k"): Promise<Tmpfs> {
  const dir = await mkdtemp(join(tmpdir(), "atomkit-full-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", dir]);
  const fillers: string[] = [];
  return {
    dir,
    fill(name = `filler-${fillers.length}`) {
      const path = join(dir, name);
      fillers.push(path);
      const fd = openSync(path, "a");
      try {
        // pages first, then single bytes: whatever is left of the last page is taken too
        for (const size of [4096, 1]) {
          const chunk = Buffer.alloc(size, 120);
          for (;;) {
            try {
              if (writeSync(fd, chunk) < size) break;
            } catch (error) {
              if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
              break;
            }
          }
        }
      } finally {
        closeSync(fd);
      }
      return path;
    },
    free() {
      for (const f of fillers.splice(0)) rmSync(f, { force: true });
    },
    async unmount() {
      try {
        execFileSync("umount", [dir], { stdio: "ignore" });
      } catch {
        // a trail that could not write keeps its file open until its process ends: detach the mount
        execFileSync("umount", ["-l", dir]);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

import { randomBytes } from "node:crypto";
import { link, mkdir, open, readFile, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { TrailError } from "../errors";
import { tempBeside } from "../kit/names";
import { keyFrom } from "../seal";
import { listIds } from "./records";

// The key a file trail is sealed with, kept in a file beside the trail directory when none is given.

/** The key in `file`; created for a new trail (`createFor`: its directory) that holds no runs yet. */
export async function keyFromFile(file: string, createFor: string | undefined): Promise<Uint8Array> {
  try {
    return keyFrom((await readFile(file, "utf8")).trim());
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw keyFileError(file, "read", error);
    const missing = (found: string, more = "") =>
      new TrailError(`no trail key at ${file}${found}`, {
        expected:
          "the key the trail was sealed with (the trail.key file beside the trail directory, or ATOMKIT_TRAIL_KEY)",
        found: "no key file",
        hint: `copy trail.key along with the trails, or set ATOMKIT_TRAIL_KEY to the key they were written with${more}`,
      });
    if (createFor === undefined) throw missing("");
    // runs sealed with a key that is gone: a new key would make all of them unreadable (a crashed one
    // would no longer block a deploy, nor be recoverable), so the key is lost, not yet to be made
    const runs = (
      await listIds(createFor).catch((e: unknown) => Promise.reject(keyFileError(file, "create", e)))
    ).length;
    if (runs) {
      throw missing(
        `, but the trail ${createFor} holds ${runs} run(s) sealed with one`,
        "; to start a new trail instead, move those runs out of the directory first",
      );
    }
  }
  // written whole to a temporary file, then linked into place: a racing process reads all of it or none
  await mkdir(dirname(file), { recursive: true });
  const fresh = randomBytes(32).toString("hex");
  const tmp = tempBeside(file);
  try {
    const fh = await open(tmp, "wx", 0o600);
    await fh.writeFile(`${fresh}\n`);
    await fh.sync();
    await fh.close();
    await link(tmp, file);
    return Buffer.from(fresh, "hex");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST")
      return keyFrom((await readFile(file, "utf8")).trim());
    throw keyFileError(file, "create", error);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** A key file that cannot be read or written is a trail that cannot be written: a TrailError. */
function keyFileError(file: string, what: "read" | "create", error: unknown): unknown {
  if (error instanceof TrailError) return error;
  const code = (error as NodeJS.ErrnoException)?.code;
  return new TrailError(`cannot ${what} the trail key ${file}: ${(error as Error)?.message ?? error}`, {
    expected: what === "read" ? "a readable key file" : "the key file written (nothing ran)",
    found: code ?? "an error",
    hint:
      code === "ENOSPC"
        ? "the trail's disk is full: free space there, then run again"
        : "check the permissions of the key file and its directory, or set ATOMKIT_TRAIL_KEY",
    cause: error,
  });
}

import { createHash } from "node:crypto";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";

/**
 * A hash of a whole local directory tree: every path, type, permission bits, file content and symlink
 * target. Two trees hash equal only if they are the same byte for byte. Missing root hashes as "absent".
 */
export async function hashTree(
  root: string,
  options: { ignore?: (relPath: string) => boolean } = {},
): Promise<string> {
  const hash = createHash("sha256");
  const walk = async (rel: string): Promise<void> => {
    const abs = rel ? join(root, rel) : root;
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(abs);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT" && !rel) {
        hash.update("absent");
        return;
      }
      throw error;
    }
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) hash.update(`L ${rel} ${await readlink(abs)}\n`);
    else if (st.isFile())
      hash
        .update(`F ${rel} ${mode} `)
        .update(await readFile(abs))
        .update("\n");
    else if (st.isDirectory()) {
      hash.update(`D ${rel} ${mode}\n`);
      for (const name of (await readdir(abs)).sort()) {
        const child = rel ? `${rel}/${name}` : name;
        if (!options.ignore?.(child)) await walk(child);
      }
    } else hash.update(`O ${rel} ${mode}\n`);
  };
  await walk("");
  return hash.digest("hex");
}

import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const PACKAGES = resolve(__dirname, "../..");

/**
 * A temp project whose deploy file uses the published step kinds (linked to this workspace's packages,
 * as `npm install @atomkit/step-fs …` would give them). `config` gets the project directory.
 */
export async function kindsProject(prefix: string, config: (dir: string) => string) {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await mkdir(join(dir, "node_modules/@atomkit"), { recursive: true });
  for (const pkg of ["core", "cli", "step-fs", "step-symlink", "step-process"])
    await symlink(join(PACKAGES, pkg), join(dir, "node_modules/@atomkit", pkg));
  await writeFile(join(dir, "atomkit.config.ts"), config(dir));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { AtomError, type TrailStore } from "@atomkit/core";
import { maskUrlPasswords } from "@atomkit/core/kit";

/**
 * The trail named by `ATOMKIT_TRAIL_URL` (`postgres://…`): how CI points every controller at the one
 * database without a line in the deploy file. The store's package is the project's, not the CLI's:
 * it is looked up from the deploy file's directory first (a project installs it next to its providers).
 */
export async function trailFromUrl(url: string, projectDir: string): Promise<TrailStore> {
  if (!/^postgres(ql)?:\/\//.test(url)) {
    throw new AtomError("ATOM_PARAMS_INVALID", "ATOMKIT_TRAIL_URL is not a PostgreSQL URL", {
      expected: "postgres://user@host:port/database (the password from PGPASSWORD or ~/.pgpass)",
      found: maskUrlPasswords(url).slice(0, 200),
      hint: "unset it to use the file trail (.atomkit/trails), or give a postgres:// URL",
    });
  }
  // `?schema=name` picks the schema (one per environment in one database); the driver never sees it
  const parsed = new URL(url);
  const schema = parsed.searchParams.get("schema") ?? undefined;
  parsed.searchParams.delete("schema");
  const mod = await loadStore(projectDir);
  return mod.postgresTrail({ connectionString: parsed.toString(), ...(schema ? { schema } : {}) });
}

async function loadStore(
  projectDir: string,
): Promise<{ postgresTrail(o: { connectionString: string; schema?: string }): TrailStore }> {
  const name = "@atomkit/store-postgres";
  try {
    return await import(pathToFileURL(createRequire(join(projectDir, "package.json")).resolve(name)).href);
  } catch (error) {
    throw new AtomError(
      "ATOM_PARAMS_INVALID",
      "ATOMKIT_TRAIL_URL names a PostgreSQL trail, but its package is not installed",
      {
        expected: `${name} installed in the project`,
        found: (error as Error).message.split("\n")[0],
        hint: `npm install --save-dev ${name}`,
      },
    );
  }
}

import { AtomError } from "@atomkit/core";
import type { Context } from "../context";
import { EXIT } from "../exit-codes";

/**
 * `atomkit store migrate`: brings a database trail's schema up to date (a store migrates on first use
 * too; this is for a deploy user without CREATE rights, run once by the schema's owner).
 */
export async function storeCommand(ctx: Context, action: string | undefined): Promise<number> {
  if (action !== "migrate") {
    throw new AtomError("ATOM_PARAMS_INVALID", `unknown store action ${JSON.stringify(action ?? "")}`, {
      expected: "migrate",
      hint: "atomkit store migrate",
    });
  }
  const trail = await ctx.trail();
  if (!trail.migrate) {
    ctx.io.stdout.write("the trail is a directory (the file trail): it has no schema to migrate\n");
    return EXIT.ok;
  }
  const { version, applied } = await trail.migrate();
  ctx.io.stdout.write(
    applied.length
      ? `migrated the trail schema to version ${version} (applied ${applied.join(", ")})\n`
      : `the trail schema is at version ${version}: nothing to migrate\n`,
  );
  return EXIT.ok;
}

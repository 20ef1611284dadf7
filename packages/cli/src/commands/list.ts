import { createColors } from "picocolors";
import type { Context } from "../context";
import { EXIT } from "../exit-codes";
import { pickMode } from "../render";

/** `atomkit list`: the deploy file's atoms with their vars, and its hosts. */
export async function listCommand(ctx: Context): Promise<number> {
  const atoms = await ctx.atoms();
  const loaded = await ctx.loaded();
  const c = createColors(pickMode(ctx.io.stdout, false, ctx.io.env).color);
  const out = (s: string) => ctx.io.stdout.write(`${s}\n`);
  const list = atoms.names().map((name) => ({ name, ...atoms.describe(name) }));
  const hosts = Object.keys(loaded.config.hosts ?? {});
  if (ctx.flags.json) {
    out(JSON.stringify({ config: loaded.path, atoms: list, hosts }));
    return EXIT.ok;
  }
  out(c.bold(`atoms of ${loaded.path}`));
  for (const a of list) {
    out(`  ${c.cyan(a.name)}${a.description ? `  ${a.description}` : ""}`);
    out(`    vars: ${a.vars || c.dim("not declared (declare them with defineAtom({ vars, atom }))")}`);
  }
  out(c.bold("hosts"));
  out(`  ${hosts.join(", ") || c.dim("none: the local machine")}`);
  return EXIT.ok;
}

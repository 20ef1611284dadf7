import { plan } from "@atomkit/core";
import { createColors } from "picocolors";
import type { Context } from "../context";
import { EXIT } from "../exit-codes";
import { pickMode } from "../render";

// file modes read as people write them (0o755), not as JSON numbers (493)
const short = (v: unknown) => {
  const s = JSON.stringify(v, (k, x) =>
    /^mode$/i.test(k) && Number.isInteger(x) ? `0o${x.toString(8)}` : x,
  );
  return s && s.length > 120 ? `${s.slice(0, 117)}…` : s;
};

/** A real dry run: observe every step read-only, on every host; nothing changes, no lock, no trail. */
export async function planCommand(ctx: Context, atomName: string): Promise<number> {
  const hosts = await ctx.selectedHosts();
  const built = await (await ctx.atoms()).forHosts(
    atomName,
    hosts.map((h) => h.key),
    ctx.vars(),
  );
  const { color } = pickMode(ctx.io.stdout, false, ctx.io.env);
  const c = createColors(color);
  let failed = false;
  for (const { key, host } of hosts) {
    const { atom, meta } = built.get(key)!;
    const result = await plan(atom, { host, signal: ctx.signal });
    if (ctx.flags.json) {
      ctx.io.stdout.write(
        `${JSON.stringify({ type: "plan", vars: meta.vars, secretVars: meta.secretVars ?? [], ...result })}\n`,
      );
      continue;
    }
    const vars = Object.entries(meta.vars).map(([k, v]) => `${k}=${v}`);
    for (const s of meta.secretVars ?? []) vars.push(`${s}=***`);
    ctx.io.stdout.write(
      `${c.bold(c.cyan(host.name))} plan of ${atom.name}${vars.length ? ` (${vars.join(" ")})` : ""} (nothing is changed)\n`,
    );
    for (const s of result.steps) {
      ctx.io.stdout.write(
        `  ${s.error ? c.red("✗") : "•"} ${s.name} ${c.dim(`[${s.phase}] ${s.kind}`)}: ${s.title}\n`,
      );
      if (s.error) {
        failed = true;
        ctx.io.stdout.write(`      ${c.red(s.error.message.split("\n")[0] ?? "")}\n`);
        continue;
      }
      ctx.io.stdout.write(`      now:  ${short(s.current)}\n`);
      if (s.predicted !== undefined) {
        ctx.io.stdout.write(
          `      then: ${short(s.predicted)} ${s.changes ? c.yellow("(changes)") : c.dim("(no change)")}\n`,
        );
      }
    }
  }
  return failed ? EXIT.error : EXIT.ok;
}

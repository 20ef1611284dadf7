import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { AtomError } from "@atomkit/core";
import { CONFIG_NAMES } from "../config";
import type { Context } from "../context";
import { EXIT } from "../exit-codes";
import { deployFile, PACKAGES, SERVER, type Shape } from "../init/templates";

/**
 * `atomkit init [--local | --ssh user@host[:port] | --docker]`: a deploy file that passes `atomkit plan`
 * at once, a stand-in app it deploys (local, SSH), and `.atomkit/` in .gitignore. Never overwrites a file.
 */
export async function initCommand(ctx: Context): Promise<number> {
  const { flags, io } = ctx;
  const dir = io.cwd;
  const shape = shapeOf(flags.ssh, flags.local, flags.docker);
  const existing = CONFIG_NAMES.find((n) => existsSync(join(dir, n)));
  if (existing)
    throw new AtomError("ATOM_PARAMS_INVALID", `${existing} already exists in ${dir}`, {
      expected: "a directory without a deploy file",
      found: existing,
      hint: "edit it, or run `atomkit init` in another directory",
    });
  const written: string[] = [];
  await writeFile(join(dir, "atomkit.config.ts"), deployFile(shape), { flag: "wx" });
  written.push("atomkit.config.ts");
  if (shape.kind !== "docker" && !existsSync(join(dir, "app/server.mjs"))) {
    await mkdir(join(dir, "app"), { recursive: true });
    await writeFile(join(dir, "app/server.mjs"), SERVER, { flag: "wx" });
    written.push("app/server.mjs (a stand-in app)");
  }
  if (await ignoreTrails(join(dir, ".gitignore")))
    written.push(".gitignore (.atomkit/: trails, trail key, reports)");
  const missing = PACKAGES[shape.kind].filter((p) => !existsSync(join(dir, "node_modules", p)));
  const out = (s: string) => io.stdout.write(`${s}\n`);
  out(`created ${written.join(", ")}`);
  if (missing.length) out(`\ninstall what it uses:\n  npm i -D ${missing.join(" ")}`);
  out(
    `\nthen:\n  npx atomkit plan release --var version=1   # observe every step; nothing changes\n  npx atomkit run release --var version=1    # deploy${shape.kind === "local" ? " to ./deploy, app on 127.0.0.1:3000" : shape.kind === "docker" ? " the image myapp:1 as container web" : ` to ${shape.host}:/srv/app`}`,
  );
  return EXIT.ok;
}

function shapeOf(ssh: string | undefined, local: boolean, docker: boolean): Shape {
  if ([ssh !== undefined, local, docker].filter(Boolean).length > 1)
    throw new AtomError("ATOM_PARAMS_INVALID", "--local, --ssh and --docker are shapes: pick one", {
      hint: "atomkit init --local   or   atomkit init --ssh deploy@web1.example.com   or   atomkit init --docker",
    });
  if (docker) return { kind: "docker" };
  if (ssh === undefined) return { kind: "local" };
  const m = /^([A-Za-z0-9._-]+)@([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?$/.exec(ssh);
  const port = m?.[3] ? Number(m[3]) : 22;
  if (!m || port < 1 || port > 65535)
    throw new AtomError("ATOM_PARAMS_INVALID", "--ssh needs user@host or user@host:port", {
      expected: "e.g. deploy@web1.example.com or deploy@10.0.0.5:2222",
      found: ssh,
      hint: "atomkit init --ssh deploy@web1.example.com",
    });
  return { kind: "ssh", user: m[1]!, host: m[2]!.replace(/^\[|\]$/g, ""), port };
}

/** Adds `.atomkit/` to .gitignore unless it is there; true when it wrote. */
async function ignoreTrails(file: string): Promise<boolean> {
  const text = await readFile(file, "utf8").catch(() => "");
  if (text.split(/\r?\n/).some((l) => /^\/?\.atomkit\/?$/.test(l.trim()))) return false;
  await writeFile(
    file,
    `${text}${text && !text.endsWith("\n") ? "\n" : ""}# atomkit: trails, the trail key, reports\n.atomkit/\n`,
  );
  return true;
}

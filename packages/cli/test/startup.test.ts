import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, beforeEach, expect, it } from "vitest";
import { atomkit, makeProject } from "./_project";

// What a command loads decides its start-up (see bench/startup.bench.mjs): a module hook in the CLI's
// process lists every file loaded, and `plan` must not load what only other commands need, nor jiti's
// ESM wrapper (node scans its 190 KB of CommonJS for export names first). The hook sees ESM resolution
// only: what is require()d is not listed.

let project: Awaited<ReturnType<typeof makeProject>>;
let hook: string;
beforeEach(async () => {
  project = await makeProject();
  const hooks = join(project.dir, "hooks.mjs");
  await writeFile(
    hooks,
    `export async function resolve(s, c, next) { const r = await next(s, c); process.stderr.write("LOADED " + r.url + "\\n"); return r; }`,
  );
  hook = join(project.dir, "register.mjs");
  await writeFile(
    hook,
    `import { register } from "node:module"; register(${JSON.stringify(pathToFileURL(hooks).href)});`,
  );
});
afterEach(() => project.cleanup());

const loaded = (stderr: string) =>
  [...stderr.matchAll(/^LOADED (\S+)$/gm)].map((m) => m[1]!.replace(/^file:\/\//, ""));

it("plan loads its own command only, and not jiti's ESM wrapper", async () => {
  const env = { NODE_OPTIONS: `--import ${hook}` };
  const r = await atomkit(project.dir, ["plan", "release"], { env });
  expect(r.code, r.stderr).toBe(0);
  const files = loaded(r.stderr);
  const cli = files.filter((f) => /\/packages\/cli\/dist\//.test(f));
  expect(cli.some((f) => /\/plan-[\w-]+\.js$/.test(f))).toBe(true);
  // nothing of the commands not run (report's HTML, init's templates, undo, status …)
  expect(
    cli.filter((f) =>
      /\/(report|init|undo|status|trail|prune|unlock|store|rollback|run|list)-[\w-]+\.js$/.test(f),
    ),
  ).toEqual([]);
  expect(files.filter((f) => /jiti\/lib\/jiti\.mjs$/.test(f))).toEqual([]);
});

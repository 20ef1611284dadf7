import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { posix } from "node:path";
import { promisify } from "node:util";
import { expect, it } from "vitest";

// A failing contract's stack frames point through the source maps at src/*.ts: those files must be in
// the published package (and in the maps), or the frames name files the user does not have.
it("the package ships its source maps, with every source they name", async () => {
  const { stdout } = await promisify(execFile)("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"]);
  const shipped = new Set(
    (JSON.parse(stdout) as [{ files: { path: string }[] }])[0].files.map((f) => f.path),
  );
  for (const map of ["dist/index.js.map", "dist/index.cjs.map"]) {
    expect(shipped.has(map), map).toBe(true);
    const m = JSON.parse(await readFile(map, "utf8")) as { sources: string[]; sourcesContent?: string[] };
    expect(m.sourcesContent?.length).toBe(m.sources.length);
    for (const source of m.sources)
      expect(shipped.has(posix.normalize(posix.join("dist", source))), source).toBe(true);
  }
});

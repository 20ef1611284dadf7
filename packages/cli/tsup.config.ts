import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";
import { base } from "../../tsup.config.base";

const define = { __VERSION__: JSON.stringify(JSON.parse(readFileSync("package.json", "utf8")).version) };
// bundled: log-update and its dozen small ESM packages cost ~60 ms of CPU at every command's start
// loaded one by one (~20 ms bundled); picocolors is CommonJS, and importing it from ESM starts node's
// CJS export scanner (~10 ms) that a local deploy otherwise never needs
const noExternal = ["log-update", "picocolors"];

export default defineConfig([
  // require("@atomkit/cli") from a CJS deploy file; shims: a working `import.meta.url` (config.ts finds
  // jiti's CJS build with it)
  { ...base, define, noExternal, format: ["cjs"], shims: true },
  // the command and the ESM entry in ONE build: they share chunks, so the deploy file's
  // `import … from "@atomkit/cli"` reuses the modules the command already loaded instead of a second
  // copy of the whole CLI; each command is its own chunk, loaded when it runs. bin keeps its #! line.
  {
    ...base,
    define,
    noExternal,
    entry: ["src/index.ts", "src/bin.ts"],
    format: ["esm"],
    dts: { entry: "src/index.ts" },
    clean: false,
  },
]);

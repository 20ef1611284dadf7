import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";
import { base } from "../../tsup.config.base";

const define = { __VERSION__: JSON.stringify(JSON.parse(readFileSync("package.json", "utf8")).version) };

export default defineConfig([
  { ...base, define },
  // the command itself: ESM only, keeps its #! line
  { ...base, define, entry: ["src/bin.ts"], format: ["esm"], dts: false, clean: false },
]);

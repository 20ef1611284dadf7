import type { Options } from "tsup";

// Shared by every package (changesets does the same with one root base config).
// ESM + CJS: Node 20 cannot require() ESM by default, and a deploy file may be CJS.
export const base: Options = {
  entry: ["src/index.ts"],
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  platform: "node",
  target: "node20",
};

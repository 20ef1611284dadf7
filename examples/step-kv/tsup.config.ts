import { defineConfig } from "tsup";

// Standalone on purpose (a third-party package has no monorepo base config to import).
// ESM + CJS: Node 20 cannot require() ESM by default, and a deploy file may be CJS.
// @atomkit/core is a peer: never bundle it, or the kind would carry a second engine and registry.
export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  platform: "node",
  target: "node20",
  external: ["@atomkit/core"],
});

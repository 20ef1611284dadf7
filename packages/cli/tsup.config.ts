import { defineConfig } from "tsup";
import { base } from "../../tsup.config.base";

export default defineConfig([
  base,
  // the command itself: ESM only, keeps its #! line
  { ...base, entry: ["src/bin.ts"], format: ["esm"], dts: false, clean: false },
]);

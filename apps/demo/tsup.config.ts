import { defineConfig } from "tsup";
import { base } from "../../tsup.config.base";

// an app, not a library: one ESM entry that runs, plus the app it deploys (copied as is)
export default defineConfig({ ...base, entry: ["src/index.ts", "src/lib.ts"], format: ["esm"], dts: false });

import { defineConfig } from "tsup";
import { base } from "../../tsup.config.base";

// two entries: the user API and the kit for authors of step kinds and hosts
export default defineConfig({ ...base, entry: ["src/index.ts", "src/kit.ts"] });

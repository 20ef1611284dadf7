import { defineConfig } from "tsup";
import { base } from "../../tsup.config.base";

// vitest and core are peers: never bundle them into the suite
export default defineConfig({ ...base, external: ["vitest", "@atomkit/core"] });

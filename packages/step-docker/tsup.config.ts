import { defineConfig } from "tsup";
import { base } from "../../tsup.config.base";

// shims: the CJS build gets a working `import.meta.url` (used to locate ssh2 next to dockerode)
export default defineConfig({ ...base, shims: true });

import { defineConfig } from "vitest/config";

// Shared by every package: real sshd/dockerd and real processes are slow to start, so allow 30 s
// per test. The JSON report is summed into CI's closing line by scripts/test-summary.mjs.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    passWithNoTests: true,
    reporters: ["default", "json"],
    outputFile: { json: "test-results.json" },
  },
});

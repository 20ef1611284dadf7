import { defineConfig } from "vitest/config";

// Shared by every package. The suites drive real sshd, dockerd and processes on CI boxes that are often
// loaded (2 cores, the other packages' suites and type checks running beside them): a slow machine must
// make a test slower, never red. So every wait inside a test is on a condition, and the budgets below
// are only a backstop for a test that hangs (a bug): far above what the slowest test takes under
// `npm run test:stress` (CPU hogs on every core). The JSON report is summed into CI's closing line by
// scripts/test-summary.mjs.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // a test that timed out may still hold sockets or children for a moment while its cleanup runs
    teardownTimeout: 60_000,
    passWithNoTests: true,
    reporters: ["default", "json"],
    outputFile: { json: "test-results.json" },
  },
});

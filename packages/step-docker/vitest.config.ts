import { availableParallelism } from "node:os";
import { defineConfig, mergeConfig } from "vitest/config";
import shared from "../../vitest.shared";

// This suite's files mostly wait on a real service (network round trips, the daemon), not on CPU, and
// it is among the longest of the run: two files at once even on a 2-core box, where vitest runs one.
export default mergeConfig(
  shared,
  defineConfig({ test: { maxWorkers: Math.max(2, availableParallelism() - 1) } }),
);

import { onTestFinished } from "vitest";

/** Work left for the end of the process when there was no test to attach it to (a beforeAll). */
const atExit = new Set<() => void>();
let hooked = false;

/**
 * Runs `cleanup` when the current test ends, passed or failed (vitest's `onTestFinished`). Called
 * outside a test (a `beforeAll`, module scope), `onTestFinished` throws: then `atExit` runs when the
 * worker exits, so a child or temp dir made there is still not left behind.
 */
export function whenTestEnds(cleanup: () => unknown | Promise<unknown>, atExitSync: () => void): void {
  try {
    onTestFinished(async () => {
      await cleanup();
    });
    return;
  } catch {
    // not inside a running test
  }
  atExit.add(atExitSync);
  if (!hooked) {
    hooked = true;
    process.once("exit", () => {
      for (const fn of atExit) {
        try {
          fn();
        } catch {
          // best effort: the process is exiting
        }
      }
    });
  }
}

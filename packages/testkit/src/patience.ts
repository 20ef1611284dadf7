/**
 * How long a test waits for something that should happen: a server up, a process gone, a daemon
 * answering. Far above what it takes on a loaded CI box (2 cores, other suites beside it), so only a
 * bug waits it out: a slow machine makes the test slower, never red. Not for things that must NOT happen.
 */
export const PATIENCE_MS = 120_000;

/**
 * Polls `check` until it holds. Throws after `ms` (default `PATIENCE_MS`), naming `what` was awaited, so
 * a hang reads as a failure of this wait rather than as the whole test's timeout.
 */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms: number = PATIENCE_MS,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`waited ${ms} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * For a test of something that must time out (a health check that never passes, a grace period that
 * runs out), where what it checks only shows if the machine got far enough within that time (the
 * server answered at least once, printed its first line). Runs `attempt(ms)` with `ms` from `first`,
 * doubling up to `max` (default 64 × first) while `conclusive(result)` says the box was too slow to
 * tell; returns the last result for the test to check. `attempt` must leave nothing behind that the
 * next one would trip over. An idle box pays the short budget once; a loaded one pays more.
 */
export async function growingBudget<T>(
  first: number,
  attempt: (ms: number) => Promise<T>,
  conclusive: (result: T) => boolean | Promise<boolean>,
  max: number = 64 * first,
): Promise<T> {
  for (let ms = first; ; ms *= 2) {
    const result = await attempt(ms);
    if (ms * 2 > max || (await conclusive(result))) return result;
  }
}

import { AtomError } from "../errors";
import type { FleetSpread } from "../fleet";

// How a fleet spreads its hosts: batches (fixed size or a canary plan), hosts at once within a batch,
// and the checks of those options before anything runs.

/** Runs at once within a batch when `concurrency` is not given (see `FleetSpread.concurrency`). */
export const DEFAULT_FLEET_CONCURRENCY = 50;

/** Bad fleet options are invalid input, refused before anything runs. */
export function checkFleetOptions(o: {
  batch?: FleetSpread["batch"];
  concurrency?: number | undefined;
  maxFailures?: number | undefined;
  onFailure?: string | undefined;
}): void {
  const bad = (field: string, expected: string, found: unknown) =>
    new AtomError("ATOM_INVALID_OPTION", `invalid fleet option ${field}`, {
      expected,
      found: JSON.stringify(found) ?? String(found),
      hint: `fix ${field} (e.g. --${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)})`,
    });
  if (o.concurrency !== undefined && !(Number.isInteger(o.concurrency) && o.concurrency >= 1))
    throw bad("concurrency", "a whole number of at least 1", o.concurrency);
  if (o.maxFailures !== undefined && !(Number.isInteger(o.maxFailures) && o.maxFailures >= 0))
    throw bad("maxFailures", "a whole number of at least 0", o.maxFailures);
  if (o.onFailure !== undefined && !["rollback-all", "rollback-host", "halt"].includes(o.onFailure))
    throw bad("onFailure", '"rollback-all", "rollback-host" or "halt"', o.onFailure);
  if (o.batch !== undefined) planBatches([1], o.batch);
}

/** Splits hosts into batches: fixed size, or a canary plan like `[1, "25%", "100%"]`. */
export function planBatches<T>(hosts: readonly T[], batch: FleetSpread["batch"]): T[][] {
  const out: T[][] = [];
  if (batch === undefined) return hosts.length ? [[...hosts]] : [];
  const plan = typeof batch === "number" ? [batch] : batch;
  if (!plan.length)
    throw new AtomError("ATOM_INVALID_OPTION", "fleet batch plan is empty", {
      hint: 'e.g. batch: [1, "25%", "100%"]',
    });
  for (const entry of plan) {
    const ok =
      typeof entry === "number"
        ? Number.isInteger(entry) && entry >= 1
        : /^\d+(\.\d+)?%$/.test(entry) && Number.parseFloat(entry) > 0 && Number.parseFloat(entry) <= 100;
    if (!ok) {
      throw new AtomError("ATOM_INVALID_OPTION", "invalid fleet batch size", {
        expected: 'a whole number of at least 1, or a percentage like "25%"',
        found: JSON.stringify(entry),
        hint: "fix batch (e.g. --batch 1,25%,100%)",
      });
    }
  }
  let i = 0;
  let k = 0;
  while (i < hosts.length) {
    const entry = plan[Math.min(k++, plan.length - 1)]!;
    const size =
      typeof entry === "number" ? entry : Math.ceil((Number.parseFloat(entry) / 100) * hosts.length);
    out.push(hosts.slice(i, i + size));
    i += size;
  }
  return out;
}

/** Runs `fn` over `items`, at most `limit` at once. */
export async function pool<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(workers);
}

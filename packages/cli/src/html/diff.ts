import type { Json } from "@atomkit/core";

export interface DiffRow {
  /** Dotted path into the state (`""` for the state as a whole). */
  path: string;
  before?: Json;
  after?: Json;
  change: "same" | "changed" | "added" | "removed";
}

/**
 * Before → after of two states, field by field: objects are walked (to `depth`), anything else (arrays,
 * strings, numbers) is compared whole. A state that is not an object on either side is one row.
 */
export function diffStates(before: Json | undefined, after: Json | undefined, depth = 4): DiffRow[] {
  const rows: DiffRow[] = [];
  const walk = (path: string, a: Json | undefined, b: Json | undefined, level: number) => {
    if (isObject(a) && isObject(b) && level < depth) {
      for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])]) {
        walk(path ? `${path}.${key}` : key, a[key], b[key], level + 1);
      }
      return;
    }
    if (a === undefined && b === undefined) return;
    const change = a === undefined ? "added" : b === undefined ? "removed" : same(a, b) ? "same" : "changed";
    rows.push({
      path,
      change,
      ...(a !== undefined ? { before: a } : {}),
      ...(b !== undefined ? { after: b } : {}),
    });
  };
  walk("", before, after, 0);
  return rows;
}

function isObject(v: Json | undefined): v is { [key: string]: Json } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function same(a: Json, b: Json): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

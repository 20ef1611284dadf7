// Secret param values: the trail never holds them, so an undo that needs one gets it from the deploy
// file's atom (or the caller) and puts it back at its dotted path.
import { getPath } from "./_utils";
import { type Atom, stepsOf } from "./atom";
import { validateParams } from "./params";
import type { Step } from "./step";
import type { Json } from "./types";

/** Secret param values by step name, then dotted path. */
export type SecretValues = Record<string, Record<string, unknown>>;

/** The dotted paths of a step's secret params (its kind's and its own). */
export function secretPathsOf(step: Step): string[] {
  return [...(step.definition.secret ?? []), ...(step.options.secret ?? [])];
}

/** A copy of `obj` with `values` set at their dotted paths. */
export function withPaths(obj: Json, values: Record<string, unknown>): Json {
  const copy = (obj && typeof obj === "object" ? structuredClone(obj) : {}) as Record<string, unknown>;
  for (const [path, value] of Object.entries(values)) {
    const parts = path.split(".");
    let cur = copy;
    for (const part of parts.slice(0, -1)) {
      if (!cur[part] || typeof cur[part] !== "object") cur[part] = {};
      cur = cur[part] as Record<string, unknown>;
    }
    cur[parts.at(-1)!] = value;
  }
  return copy as Json;
}

/**
 * The secret param values of an atom's steps (by step name and dotted path), which the trail never
 * holds: give them to `undoRun`/`recover` as `secrets` when their undo needs them (or pass the `atom`).
 */
export async function atomSecrets(a: Atom): Promise<SecretValues> {
  const out: SecretValues = {};
  for (const { step } of stepsOf(a)) {
    const paths = secretPathsOf(step);
    if (!paths.length) continue;
    const v = await validateParams(step);
    if (v.issues) continue;
    const values: Record<string, unknown> = {};
    for (const path of paths) {
      const value = getPath(v.value, path);
      if (value !== undefined) values[path] = value;
    }
    if (Object.keys(values).length) out[step.name] = values;
  }
  return out;
}

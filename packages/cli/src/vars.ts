import {
  type Atom,
  type AtomError,
  ParamsError,
  type ParamsIssue,
  type StandardSchemaV1,
} from "@atomkit/core";
import { MASK, Redactor } from "@atomkit/core/kit";

/** Variables of an atom: `--var key=value`, a host's `vars`, declared defaults. */
export type Vars = Record<string, string>;

/** How an atom declares one of its vars (`defineAtom({ vars: { version: { … } } })`). */
export interface VarSpec {
  /** Shown by `atomkit list` and `run --help`. */
  description?: string;
  /** Used when the var is not given. A var without a default is required. */
  default?: string;
  /** The allowed values. */
  values?: readonly string[];
  /** Read from this environment variable when no `--var` gives it (e.g. a CI secret). */
  env?: string;
  /**
   * Never recorded in the trail (the CLI records every other var, so undo can rebuild the atom).
   * `undo`, `rollback` and `recover` need it again: from `--var` or `env`. A var whose value ends up in
   * a step's secret param is treated as secret even when not declared so.
   */
  secret?: boolean;
  /** A Standard Schema (zod v4, valibot…) for the value, checked after `values`. */
  schema?: StandardSchemaV1<string, unknown>;
}

export type VarSpecs = Record<string, VarSpec>;

/** A var's value as given: `--var`, the host's `vars`, its environment variable, or its default. */
export async function resolveVars(
  atomName: string,
  specs: VarSpecs | undefined,
  layers: { given: Vars; host: Vars; env: NodeJS.ProcessEnv },
): Promise<Vars> {
  if (!specs) return { ...layers.host, ...layers.given };
  const issues: string[] = [];
  const out: Vars = {};
  for (const [name, spec] of Object.entries(specs)) {
    const value =
      layers.given[name] ??
      layers.host[name] ??
      (spec.env ? layers.env[spec.env] : undefined) ??
      spec.default;
    if (value === undefined) {
      issues.push(
        `var "${name}" is required${spec.env ? ` (--var ${name}=… or $${spec.env})` : ` (--var ${name}=…)`}${spec.description ? `: ${spec.description}` : ""}`,
      );
      continue;
    }
    if (spec.values && !spec.values.includes(value)) {
      issues.push(
        `var "${name}" must be one of ${spec.values.join(", ")}${spec.secret ? "" : `, not "${value}"`}`,
      );
      continue;
    }
    if (spec.schema) {
      const r = await spec.schema["~standard"].validate(value);
      if (r.issues) {
        const message = r.issues[0]?.message ?? "invalid";
        // a schema's message may quote the value it refuses
        const mask = new Redactor();
        if (spec.secret) mask.addValues([value]);
        issues.push(`var "${name}": ${mask.text(message)}`);
        continue;
      }
    }
    out[name] = value;
  }
  const unknown = Object.keys(layers.given).filter((k) => !(k in specs));
  for (const name of unknown) issues.push(`unknown var "${name}"`);
  if (issues.length) throw varsError(atomName, specs, issues);
  return out;
}

function varsError(atomName: string, specs: VarSpecs, issues: string[]): AtomError {
  const list: ParamsIssue[] = issues.map((message) => ({ step: "", kind: "", path: "vars", message }));
  return new ParamsError(
    `invalid vars for atom "${atomName}", nothing was run:\n  - ${issues.join("\n  - ")}`,
    list,
    {
      atom: atomName,
      expected: describeVars(specs) || "no vars",
      hint: "`atomkit list` shows every atom's vars",
    },
  );
}

/** `version (required): the release id · env = prod|staging (default prod)` */
export function describeVars(specs: VarSpecs | undefined): string {
  if (!specs) return "";
  return Object.entries(specs)
    .map(([name, s]) => {
      const how = [
        s.values ? s.values.join("|") : undefined,
        s.default !== undefined ? `default ${s.secret ? MASK : s.default}` : "required",
        s.env ? `$${s.env}` : undefined,
        s.secret ? "secret" : undefined,
      ].filter(Boolean);
      return `${name} (${how.join(", ")})${s.description ? `: ${s.description}` : ""}`;
    })
    .join(" · ");
}

/**
 * For atoms that do not declare their vars: the vars object handed to the factory, noting which names
 * it read. A read of a var nobody gave is how `app-${version}` became `app-undefined`.
 */
export function watchedVars(vars: Vars): { vars: Vars; read: Set<string>; missing: Set<string> } {
  const read = new Set<string>();
  const missing = new Set<string>();
  const proxy = new Proxy(vars, {
    get(target, key) {
      if (typeof key === "string") {
        read.add(key);
        if (!(key in target)) missing.add(key);
      }
      return Reflect.get(target, key);
    },
  });
  return { vars: proxy, read, missing };
}

/** Refuses an undeclared atom built from a var nobody gave (it became "undefined"), or a var it never read. */
export function checkWatched(
  atomName: string,
  built: Atom,
  watch: { read: Set<string>; missing: Set<string> },
  given: Vars,
): void {
  const text = JSON.stringify([...built.pre, ...built.steps, ...built.post].map((s) => s.params));
  const undefinedUse = [...watch.missing].filter(() => text.includes("undefined"));
  const unread = Object.keys(given).filter((k) => !watch.read.has(k));
  const issues = [
    ...undefinedUse.map((name) => `var "${name}" is used but was not given (it became "undefined")`),
    ...unread.map((name) => `unknown var "${name}" (the atom never reads it)`),
  ];
  if (!issues.length) return;
  throw new ParamsError(
    `invalid vars for atom "${atomName}", nothing was run:\n  - ${issues.join("\n  - ")}`,
    [],
    {
      atom: atomName,
      expected: watch.read.size ? `vars the atom reads: ${[...watch.read].sort().join(", ")}` : "no vars",
      hint: "declare the atom's vars with defineAtom({ vars: { … }, atom }) so `atomkit list` shows them",
    },
  );
}

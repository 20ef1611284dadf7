import {
  type AnyStepKind,
  type Atom,
  AtomError,
  isAtomError,
  type RunView,
  registerSteps,
} from "@atomkit/core";
import { atomSecrets, Redactor, stepsOf } from "@atomkit/core/kit";
import type { AtomEntry, AtomFactory, DeclaredAtom, HostPool, LoadedConfig } from "./config";
import { checkWatched, describeVars, resolveVars, type VarSpecs, type Vars, watchedVars } from "./vars";

/** What a run records about how its atom was built, so undo and recover can build it again. */
export interface RunMeta {
  /** Every var the atom was built with, but the secret ones. */
  vars: Vars;
  /** Names of secret vars: never recorded; undo needs them again. */
  secretVars?: string[];
  /** The host's key in the deploy file (its per-host vars). */
  hostKey: string;
}

interface Entry {
  description?: string | undefined;
  specs?: VarSpecs | undefined;
  build: AtomFactory;
}

/** Builds the deploy file's atoms for hosts: from `--var`s (runs) or from a run's record (undo, recover). */
export class Atoms {
  constructor(
    private readonly loaded: LoadedConfig,
    private readonly pool: HostPool,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  names(): string[] {
    return Object.keys(this.loaded.config.atoms);
  }

  /** Description and declared vars, for `atomkit list`. */
  describe(name: string): { description?: string; vars: string } {
    const e = this.entry(name);
    return { ...(e.description ? { description: e.description } : {}), vars: describeVars(e.specs) };
  }

  /**
   * The atom for each host, from the given `--var`s, and what each run records. Invalid vars (missing,
   * unknown, not allowed) are refused before anything runs.
   */
  async forHosts(
    name: string,
    hostKeys: readonly string[],
    given: Vars,
  ): Promise<Map<string, { atom: Atom; meta: RunMeta }>> {
    const e = this.entry(name);
    const out = new Map<string, { atom: Atom; meta: RunMeta }>();
    const read = new Set<string>();
    for (const key of hostKeys) {
      const vars = await resolveVars(name, e.specs, { given, host: this.pool.vars(key), env: this.env });
      const watch = e.specs ? undefined : watchedVars(vars);
      const atom = await this.call(name, e, watch?.vars ?? vars, key);
      if (watch) {
        for (const r of watch.read) read.add(r);
        checkWatched(name, atom, { read: watch.read, missing: watch.missing }, {});
      }
      out.set(key, { atom, meta: await this.meta(atom, e.specs, vars, key) });
    }
    // an undeclared atom: a --var no host's build read is a typo, not a value
    if (!e.specs) checkWatched(name, [...out.values()][0]!.atom, { read, missing: new Set() }, given);
    return out;
  }

  /**
   * The atom a recorded run was built from: its recorded vars, the secret ones given again (`--var` or
   * their environment variable), its host's vars. Refused when a secret var is not given again.
   */
  async forRun(view: RunView, given: Vars): Promise<Atom> {
    const meta = (view.run.meta ?? {}) as Partial<RunMeta>;
    const name = view.run.atom;
    const e = this.entry(name, view.run.runId);
    const hostKey = meta.hostKey ?? (await this.pool.entry(view.run.host)).key;
    const secretSpecs = e.specs ?? {};
    const missing = (meta.secretVars ?? []).filter(
      (v) => given[v] === undefined && !(secretSpecs[v]?.env && this.env[secretSpecs[v].env!] !== undefined),
    );
    if (missing.length) {
      throw new AtomError(
        "ATOM_PARAMS_INVALID",
        `run ${view.run.runId} was made with the secret var(s) ${missing.join(", ")}, which the trail never holds`,
        {
          atom: name,
          host: view.run.host,
          expected: `${missing.map((v) => `--var ${v}=…`).join(" ")} (or their environment variables)`,
          found: "not given",
          hint: "give them again, as for the run: the undo rebuilds its steps (with their secrets) from the deploy file",
        },
      );
    }
    const vars = await resolveVars(name, e.specs, {
      given: { ...(meta.vars ?? {}), ...given },
      host: this.pool.vars(hostKey),
      env: this.env,
    });
    return this.call(name, e, vars, hostKey);
  }

  /** Makes every kind the deploy file's atoms use known, for trails whose atoms cannot be built now. */
  async registerKinds(given: Vars): Promise<string[]> {
    const failures: string[] = [];
    for (const name of this.names()) {
      const e = this.entry(name);
      try {
        const vars = await resolveVars(name, e.specs, { given: {}, host: {}, env: this.env }).catch(() => ({
          ...given,
        }));
        const atom = await this.call(name, e, vars, this.pool.names()[0] ?? "local");
        for (const { step } of stepsOf(atom))
          registerSteps({ kind: step.kind, definition: step.definition } as unknown as AnyStepKind);
      } catch (error) {
        failures.push(`atom "${name}": ${isAtomError(error) ? error.shortMessage : String(error)}`);
      }
    }
    return failures;
  }

  private entry(name: string, runId?: string): Entry {
    const raw: AtomEntry | undefined = this.loaded.config.atoms[name];
    if (!raw) {
      throw new AtomError("ATOM_PARAMS_INVALID", `no atom "${name}" in ${this.loaded.path}`, {
        expected: this.names().join(", ") || "at least one atom",
        found: name,
        hint: runId
          ? `run ${runId} was of atom "${name}": undo and recover rebuild it from the deploy file; check out the version of the deploy file that has it`
          : "`atomkit list` shows the atoms of the deploy file",
      });
    }
    if (typeof raw === "function") return { build: raw };
    if (isDeclared(raw)) {
      const a = raw.atom;
      return {
        description: raw.description,
        specs: raw.vars ?? {},
        build: typeof a === "function" ? a : () => a,
      };
    }
    return { build: () => raw as Atom };
  }

  private async call(name: string, e: Entry, vars: Vars, hostKey: string): Promise<Atom> {
    let atom: Atom;
    try {
      atom = await e.build(vars, { host: hostKey });
    } catch (error) {
      if (isAtomError(error) && error.code === "ATOM_PARAMS_INVALID") throw error;
      // the deploy file's own message may quote a var it could not use: never a secret one
      const mask = new Redactor();
      mask.addValues(Object.entries(vars).flatMap(([k, v]) => (e.specs?.[k]?.secret ? [v] : [])));
      throw new AtomError(
        "ATOM_PARAMS_INVALID",
        `atom "${name}" of ${this.loaded.path} could not be built: ${mask.text(String((error as Error)?.message ?? error))}`,
        {
          cause: error,
          // names only: a var's value may be a secret
          found: `vars ${Object.keys(vars).sort().join(", ") || "(none)"} for host "${hostKey}"`,
          hint: "pass the vars the atom needs (`atomkit list` shows declared ones), or fix the atom in the deploy file",
        },
      );
    }
    // its kinds known to this process: undo and recover rebuild steps from them
    for (const { step } of stepsOf(atom))
      registerSteps({ kind: step.kind, definition: step.definition } as unknown as AnyStepKind);
    return atom;
  }

  /** The vars to record: all but the secret ones (declared so, or found inside a step's secret param). */
  private async meta(atom: Atom, specs: VarSpecs | undefined, vars: Vars, hostKey: string): Promise<RunMeta> {
    const secretValues = Object.values(await atomSecrets(atom)).flatMap((paths) =>
      flatStrings(Object.values(paths)),
    );
    const secret = (name: string, value: string) =>
      specs?.[name]?.secret === true ||
      secretValues.some((s) => (value.length >= 4 ? s.includes(value) : s === value));
    const recorded: Vars = {};
    const secretVars: string[] = [];
    for (const [name, value] of Object.entries(vars)) {
      if (secret(name, value)) secretVars.push(name);
      else recorded[name] = value;
    }
    return { vars: recorded, ...(secretVars.length ? { secretVars: secretVars.sort() } : {}), hostKey };
  }
}

function isDeclared(entry: AtomEntry): entry is DeclaredAtom {
  return typeof entry === "object" && entry !== null && "atom" in entry && !("steps" in entry);
}

function flatStrings(values: unknown[]): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (typeof v === "string" || typeof v === "number") out.push(String(v));
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  values.forEach(walk);
  return out;
}

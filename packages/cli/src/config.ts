import { existsSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import {
  type AnyStepKind,
  type Atom,
  AtomError,
  atomSecrets,
  fileTrail,
  type Host,
  type LockSettings,
  localHost,
  registerSteps,
  type SecretValues,
  stepsOf,
  type TrailStore,
} from "@atomkit/core";
import { createJiti } from "jiti";

/** Variables from `--var key=value`, for atoms that are functions of the release (version, tarball…). */
export type Vars = Record<string, string>;

export interface AtomkitConfig {
  /** Hosts by name. A function is called only when the host is used (e.g. to open an SSH connection). */
  hosts?: Record<string, Host | (() => Host | Promise<Host>)>;
  /** Atoms by name; a function receives the `--var` values. */
  atoms: Record<string, Atom | ((vars: Vars) => Atom | Promise<Atom>)>;
  /** Default `{ dir: ".atomkit/trails" }` next to the config file; or any TrailStore. */
  trail?: { dir?: string } | TrailStore;
  /** Step kinds to register for `undo`/`recover` besides those used by the atoms (e.g. retired ones). */
  steps?: readonly AnyStepKind[];
  /** The host lock for runs. Default `{ name: "deploy" }`. */
  lock?: LockSettings | false;
}

/** Identity function that types a deploy file: `export default defineConfig({ hosts, atoms })`. */
export function defineConfig(config: AtomkitConfig): AtomkitConfig {
  return config;
}

export const CONFIG_NAMES = [
  "atomkit.config.ts",
  "atomkit.config.mts",
  "atomkit.config.js",
  "atomkit.config.mjs",
  "atomkit.config.cjs",
];

export interface LoadedConfig {
  path: string;
  dir: string;
  config: AtomkitConfig;
}

/** Loads a deploy file written in TypeScript or JavaScript (jiti: no build step for the user). */
export async function loadConfig(cwd: string, explicit?: string): Promise<LoadedConfig> {
  const path = explicit
    ? isAbsolute(explicit)
      ? explicit
      : resolve(cwd, explicit)
    : CONFIG_NAMES.map((n) => join(cwd, n)).find((p) => existsSync(p));
  if (!path || !existsSync(path)) {
    throw new AtomError(
      "ATOM_PARAMS_INVALID",
      explicit ? `no deploy file at ${path}` : `no deploy file in ${cwd}`,
      {
        expected: CONFIG_NAMES.join(", "),
        found: explicit ?? "none",
        hint: "create atomkit.config.ts exporting defineConfig({ hosts, atoms }), or pass --config <file>",
      },
    );
  }
  const jiti = createJiti(path, { interopDefault: true, moduleCache: false });
  let mod: { default?: AtomkitConfig } & AtomkitConfig;
  try {
    mod = (await jiti.import(path)) as typeof mod;
  } catch (error) {
    throw new AtomError(
      "ATOM_PARAMS_INVALID",
      `cannot load the deploy file ${path}: ${(error as Error)?.message ?? error}`,
      {
        cause: error,
        hint: "fix the error in the deploy file (ATOMKIT_DEBUG=1 shows the stack)",
      },
    );
  }
  const config = (mod.default ?? mod) as AtomkitConfig;
  if (!config || typeof config !== "object" || !config.atoms || typeof config.atoms !== "object") {
    throw new AtomError("ATOM_PARAMS_INVALID", `deploy file ${path} exports no atoms`, {
      expected: "export default defineConfig({ atoms: { release: atom(...) } })",
      found: config ? `keys: ${Object.keys(config).join(", ")}` : String(config),
    });
  }
  if (config.steps) registerSteps(...config.steps);
  return { path, dir: resolve(path, ".."), config };
}

export async function resolveAtom(loaded: LoadedConfig, name: string, vars: Vars): Promise<Atom> {
  const entry = loaded.config.atoms[name];
  if (!entry) {
    throw new AtomError("ATOM_PARAMS_INVALID", `no atom "${name}" in ${loaded.path}`, {
      expected: Object.keys(loaded.config.atoms).join(", ") || "at least one atom",
      found: name,
      hint: "run `atomkit trail` or check the atoms in the deploy file",
    });
  }
  let a: Atom;
  try {
    a = typeof entry === "function" ? await entry(vars) : entry;
  } catch (error) {
    throw new AtomError(
      "ATOM_PARAMS_INVALID",
      `atom "${name}" of ${loaded.path} could not be built: ${(error as Error)?.message ?? error}`,
      {
        cause: error,
        found: `--var ${
          Object.entries(vars)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ") || "(none)"
        }`,
        hint: "pass the --var values the atom needs, or fix the atom in the deploy file",
      },
    );
  }
  // make its kinds known for undo/recover in this process
  for (const { step } of stepsOf(a)) {
    registerSteps({ kind: step.kind, definition: step.definition } as unknown as AnyStepKind);
  }
  return a;
}

/**
 * Registers the step kinds of every atom in the deploy file, so `undo` and `recover` can rebuild steps
 * from the trail. An atom factory that cannot be built without its `--var`s is skipped: list such
 * kinds in `steps` (the error for a missing kind says so).
 */
export async function registerAll(
  loaded: LoadedConfig,
  vars: Vars,
): Promise<{ secrets: Map<string, SecretValues>; failures: string[] }> {
  const secrets = new Map<string, SecretValues>();
  const failures: string[] = [];
  for (const name of Object.keys(loaded.config.atoms)) {
    try {
      const a = await resolveAtom(loaded, name, vars);
      secrets.set(a.name, await atomSecrets(a));
    } catch (error) {
      // see above; said when a kind then turns out to be missing
      failures.push(`atom "${name}": ${(error as AtomError).shortMessage ?? String(error)}`);
    }
  }
  return { secrets, failures };
}

export function trailOf(loaded: LoadedConfig, override?: string): TrailStore {
  if (override) return fileTrail({ dir: resolve(process.cwd(), override) });
  const t = loaded.config.trail;
  if (t && typeof (t as TrailStore).append === "function") return t as TrailStore;
  const dir = (t as { dir?: string } | undefined)?.dir ?? ".atomkit/trails";
  return fileTrail({ dir: isAbsolute(dir) ? dir : join(loaded.dir, dir) });
}

/** Hosts opened by this command, closed at exit. */
export class HostPool {
  private readonly open = new Map<string, Host>();
  constructor(private readonly loaded: LoadedConfig) {}

  names(): string[] {
    return Object.keys(this.loaded.config.hosts ?? {});
  }

  /** By config key; then by a host's own `name` (what the trail records). */
  async get(name: string): Promise<Host> {
    const cached = this.open.get(name);
    if (cached) return cached;
    const hosts = this.loaded.config.hosts ?? {};
    if (!Object.keys(hosts).length && (name === "local" || name === "localhost"))
      return this.keep(name, localHost());
    if (hosts[name]) return this.keep(name, await make(hosts[name]));
    for (const [key, value] of Object.entries(hosts)) {
      const h = this.open.get(key) ?? this.keep(key, await make(value));
      if (h.name === name) return h;
    }
    throw new AtomError("ATOM_PARAMS_INVALID", `no host "${name}" in ${this.loaded.path}`, {
      expected: this.names().join(", ") || "hosts: { … } in the deploy file",
      found: name,
      hint: "add the host to the deploy file's hosts, or fix --host",
    });
  }

  async closeAll(): Promise<void> {
    await Promise.all([...new Set(this.open.values())].map((h) => h.close().catch(() => {})));
  }

  private keep(key: string, host: Host): Host {
    this.open.set(key, host);
    return host;
  }
}

async function make(value: Host | (() => Host | Promise<Host>)): Promise<Host> {
  return typeof value === "function" ? await value() : value;
}

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, isAbsolute, join, resolve } from "node:path";
import {
  type AnyStepKind,
  type Atom,
  AtomError,
  fileTrail,
  type Host,
  type LockSettings,
  registerSteps,
  type TrailStore,
} from "@atomkit/core";
import { type KeyedHost, keyedHost } from "./keyed-host";
import { trailFromUrl } from "./trail-url";
import type { VarSpecs, Vars } from "./vars";

export type { VarSpec, VarSpecs, Vars } from "./vars";

/** A host of the deploy file: a Host, a function that opens one, or either with per-host vars. */
export type HostEntry = HostLike | { host: HostLike; vars?: Vars };
type HostLike = Host | (() => Host | Promise<Host>);

/** What builds an atom: the resolved vars, and the host (its key in `hosts`) it is built for. */
export type AtomFactory = (vars: Vars, context: { host: string }) => Atom | Promise<Atom>;

/** An atom with declared vars: `atomkit list` shows them; a missing or unknown var is invalid input. */
export interface DeclaredAtom {
  description?: string;
  vars?: VarSpecs;
  atom: Atom | AtomFactory;
}

export type AtomEntry = Atom | AtomFactory | DeclaredAtom;

export interface AtomkitConfig {
  /**
   * Hosts by name. A function is called only when the host is used (e.g. to open an SSH connection).
   * `{ host, vars }` gives the host its own values of the atoms' vars (a port, a path).
   */
  hosts?: Record<string, HostEntry>;
  /** Atoms by name: an atom, a function of the vars and host, or `defineAtom({ vars, atom })`. */
  atoms: Record<string, AtomEntry>;
  /**
   * Default `{ dir: ".atomkit/trails" }` next to the config file, sealed with the key in
   * `ATOMKIT_TRAIL_KEY` or `.atomkit/trail.key`; or any TrailStore, e.g. `postgresTrail(...)` from
   * `@atomkit/store-postgres` (`ATOMKIT_TRAIL_URL=postgres://…` overrides this).
   */
  trail?: { dir?: string; keyFile?: string } | TrailStore;
  /** Step kinds to register for `undo`/`recover` besides those used by the atoms (e.g. retired ones). */
  steps?: readonly AnyStepKind[];
  /** The host lock for runs. Default `{ name: "deploy" }`. */
  lock?: LockSettings | false;
  /**
   * Absolute paths the atoms' steps may change on the hosts (e.g. `["/srv/app"]`). `undo`, `rollback`
   * and `recover` refuse a trail record whose step would change anything outside them.
   */
  roots?: readonly string[];
  /**
   * Trail retention, applied after every `run` (as `atomkit trail prune` would): keep the newest `keep`
   * runs per host and/or only runs younger than `olderThan` ("90d", "12h", "30m"). Never removes a live
   * release, an unfinished or rollback-failed run, nor one half of a run and its undo.
   */
  retain?: { keep?: number; olderThan?: string };
}

/** Types an atom with declared vars: `defineAtom({ vars: { version: {} }, atom: ({ version }) => atom(…) })`. */
export function defineAtom(definition: DeclaredAtom): DeclaredAtom {
  return definition;
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

/** The deploy file in `dir` or the nearest parent directory that has one (like git, npm). */
export function findConfig(dir: string): string | undefined {
  for (let d = resolve(dir); ; d = dirname(d)) {
    const found = CONFIG_NAMES.map((n) => join(d, n)).find((p) => existsSync(p));
    if (found) return found;
    if (dirname(d) === d) return undefined;
  }
}

export interface LoadedConfig {
  path: string;
  dir: string;
  config: AtomkitConfig;
}

/** Loads a deploy file written in TypeScript or JavaScript (jiti: no build step for the user). */
export async function loadConfig(cwd: string, explicit?: string): Promise<LoadedConfig> {
  const path = explicit ? (isAbsolute(explicit) ? explicit : resolve(cwd, explicit)) : findConfig(cwd);
  if (!path || !existsSync(path)) {
    throw new AtomError(
      "ATOM_PARAMS_INVALID",
      explicit ? `no deploy file at ${path}` : `no deploy file in ${cwd} or any parent directory`,
      {
        expected: CONFIG_NAMES.join(", "),
        found: explicit ?? "none",
        hint: "create atomkit.config.ts exporting defineConfig({ hosts, atoms }), or pass --config <file>",
      },
    );
  }
  // fsCache (jiti's default, said here so it stays on): the compiled deploy file is kept in
  // node_modules/.cache/jiti (or $TMPDIR/jiti), checked against its source, so later runs skip babel
  const jiti = loadJiti()(path, { interopDefault: true, moduleCache: false, fsCache: true });
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

/**
 * jiti's CJS build, loaded only when a deploy file is: importing its ESM wrapper instead makes node
 * scan 190 KB of CommonJS for export names first (~60 ms of every command's start).
 */
function loadJiti(): typeof import("jiti").createJiti {
  return createRequire(import.meta.url)("jiti").createJiti;
}

/**
 * The trail: `--trail <dir>` (from where the command was started), else `ATOMKIT_TRAIL_URL` (a
 * PostgreSQL trail: CI points every controller at one database that way), else the config's, else
 * `.atomkit/trails` next to the deploy file.
 */
export async function trailOf(
  loaded: LoadedConfig,
  override?: string,
  cwd = process.cwd(),
  env: Record<string, string | undefined> = process.env,
): Promise<TrailStore> {
  if (override) return fileTrail({ dir: resolve(cwd, override) });
  if (env.ATOMKIT_TRAIL_URL) return trailFromUrl(env.ATOMKIT_TRAIL_URL, loaded.dir);
  const t = loaded.config.trail;
  if (t && typeof (t as TrailStore).append === "function") return t as TrailStore;
  const o = (t ?? {}) as { dir?: string; keyFile?: string };
  const dir = o.dir ?? ".atomkit/trails";
  return fileTrail({
    dir: isAbsolute(dir) ? dir : join(loaded.dir, dir),
    ...(o.keyFile ? { keyFile: isAbsolute(o.keyFile) ? o.keyFile : join(loaded.dir, o.keyFile) } : {}),
  });
}

/**
 * Hosts opened by this command, closed at exit. Each is named by its key in `hosts` (see `keyedHost`):
 * that name is what runs, locks, `plan`, `status` and `--host` use.
 */
export class HostPool {
  /** The Host objects of the deploy file, by key, opened once. */
  private readonly open = new Map<string, Host>();
  private readonly named = new Map<string, { key: string; host: KeyedHost }>();
  constructor(private readonly loaded: LoadedConfig) {}

  /** The config keys of the hosts. */
  names(): string[] {
    return Object.keys(this.loaded.config.hosts ?? {});
  }

  /** The per-host vars of a host, by config key. */
  vars(key: string): Vars {
    const entry = this.loaded.config.hosts?.[key];
    return entry && isWithVars(entry) ? { ...(entry.vars ?? {}) } : {};
  }

  /** By config key; then by a host's own name (what runs recorded before hosts were named by key). */
  async get(name: string): Promise<KeyedHost> {
    return (await this.entry(name)).host;
  }

  /**
   * The host named `name` and its config key. A name that is no key but the own name of a host (a
   * run recorded as `deploy@10.0.0.5:22` before hosts were named by key) finds that host, named as the
   * run recorded it, so `undo`, `recover` and `--host` still reach those runs.
   */
  async entry(name: string): Promise<{ key: string; host: KeyedHost }> {
    const cached = this.named.get(name);
    if (cached) return cached;
    const hosts = this.loaded.config.hosts ?? {};
    let key: string | undefined = Object.hasOwn(hosts, name) ? name : undefined;
    if (key === undefined) {
      for (const k of Object.keys(hosts)) {
        if ((await this.host(k)).name === name) {
          key = k;
          break;
        }
      }
    }
    if (key === undefined) {
      throw new AtomError("ATOM_PARAMS_INVALID", `no host "${name}" in ${this.loaded.path}`, {
        expected: this.names().join(", ") || "hosts: { … } in the deploy file",
        found: name,
        hint: "add the host to the deploy file's hosts, or fix --host",
      });
    }
    const entry = { key, host: keyedHost(name, await this.host(key)) };
    this.named.set(name, entry);
    return entry;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...new Set(this.open.values())].map((h) => h.close().catch(() => {})));
  }

  /** The deploy file's Host object of a key, opened once. */
  private async host(key: string): Promise<Host> {
    let h = this.open.get(key);
    if (!h) {
      h = await make(this.loaded.config.hosts![key]!);
      this.open.set(key, h);
    }
    return h;
  }
}

function isWithVars(entry: HostEntry): entry is { host: HostLike; vars?: Vars } {
  return typeof entry === "object" && entry !== null && "host" in entry && !("exec" in entry);
}

async function make(value: HostEntry): Promise<Host> {
  const h = isWithVars(value) ? value.host : value;
  return typeof h === "function" ? await h() : h;
}

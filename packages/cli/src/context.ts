import type { Atom, SecretValues } from "@atomkit/core";
import {
  HostPool,
  type LoadedConfig,
  loadConfig,
  registerAll,
  resolveAtom,
  trailOf,
  type Vars,
} from "./config";
import { createRenderer, pickMode, type Renderer } from "./render";

export interface Flags {
  config?: string;
  host: string[];
  json: boolean;
  "dry-run": boolean;
  force: boolean;
  "break-stale": boolean;
  "rollback-committed": boolean;
  yes: boolean;
  batch?: string;
  "max-failures"?: string;
  "on-failure"?: string;
  concurrency?: string;
  trail?: string;
  lock?: string;
  var: string[];
}

export interface Io {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** What every command gets: the deploy file, its hosts and trail, a renderer, the abort signal. */
export class Context {
  readonly renderer: Renderer;
  private loadedConfig?: LoadedConfig;
  private pool?: HostPool;

  constructor(
    readonly flags: Flags,
    readonly io: Io,
    readonly signal: AbortSignal,
  ) {
    this.renderer = createRenderer(pickMode(io.stdout, flags.json, io.env));
  }

  async loaded(): Promise<LoadedConfig> {
    this.loadedConfig ??= await loadConfig(this.io.cwd, this.flags.config);
    return this.loadedConfig;
  }

  async hosts(): Promise<HostPool> {
    this.pool ??= new HostPool(await this.loaded());
    return this.pool;
  }

  async trail() {
    return trailOf(await this.loaded(), this.flags.trail);
  }

  /**
   * For undo/recover: make every kind the deploy file uses known to this process, building its atoms
   * with the `--var`s the run was made with (recorded in the trail), overridden by any given now.
   */
  async registerKinds(recorded: Vars = {}): Promise<(atom: string) => SecretValues | undefined> {
    const { secrets, failures } = await registerAll(await this.loaded(), { ...recorded, ...this.vars() });
    this.buildFailures.push(...failures);
    return (atom) => secrets.get(atom);
  }

  /** Atoms that could not be built for undo/recover: the likely reason a step kind is "not registered". */
  readonly buildFailures: string[] = [];

  async atom(name: string): Promise<Atom> {
    return resolveAtom(await this.loaded(), name, this.vars());
  }

  vars(): Vars {
    const out: Vars = {};
    for (const v of this.flags.var) {
      const i = v.indexOf("=");
      if (i > 0) out[v.slice(0, i)] = v.slice(i + 1);
    }
    return out;
  }

  /** `--host a --host b,c`; default every host of the deploy file (or the local machine). */
  async hostNames(): Promise<string[]> {
    const given = this.flags.host.flatMap((h) => h.split(",")).filter(Boolean);
    if (given.length) return given;
    const names = (await this.hosts()).names();
    return names.length ? names : ["local"];
  }

  lockSettings() {
    const configured = this.loadedConfig?.config.lock;
    if (configured === false) return false as const;
    return {
      ...(configured ?? {}),
      ...(this.flags.lock ? { name: this.flags.lock } : {}),
      ...(this.flags["break-stale"] ? { breakStale: true } : {}),
    };
  }

  async close(): Promise<void> {
    this.renderer.done();
    await this.pool?.closeAll();
  }
}

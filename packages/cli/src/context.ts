import { resolve } from "node:path";
import {
  AtomError,
  type FleetFailurePolicy,
  type FleetSpread,
  fileTrail,
  type LockSettings,
  readFleet,
  type TrailStore,
} from "@atomkit/core";
import { checkFleetOptions, DEFAULT_FLEET_CONCURRENCY } from "@atomkit/core/kit";
import { Atoms } from "./atoms";
import { findConfig, HostPool, type LoadedConfig, loadConfig, trailOf } from "./config";
import type { KeyedHost } from "./keyed-host";
import { createRenderer, pickMode, type Renderer } from "./render";
import { trailFromUrl } from "./trail-url";
import type { Vars } from "./vars";

export interface Flags {
  config?: string;
  host: string[];
  json: boolean;
  "dry-run": boolean;
  force: boolean;
  "allow-later-runs": boolean;
  "break-stale": boolean;
  "rollback-committed": boolean;
  history: boolean;
  last: boolean;
  keep?: string;
  "older-than"?: string;
  local: boolean;
  docker: boolean;
  ssh?: string;
  output?: string;
  yes: boolean;
  batch?: string;
  "max-failures"?: string;
  "on-failure"?: string;
  concurrency?: string;
  to?: string;
  steps?: string;
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

/** What every command gets: the deploy file, its hosts, atoms and trail, a renderer, the abort signal. */
export class Context {
  readonly renderer: Renderer;
  private loadedConfig?: LoadedConfig;
  private pool?: HostPool;
  private trailStore?: TrailStore;

  constructor(
    readonly flags: Flags,
    readonly io: Io,
    readonly signal: AbortSignal,
  ) {
    this.renderer = createRenderer(pickMode(io.stdout, flags.json, io.env));
  }

  /**
   * The deploy file. Once loaded, relative paths in it resolve from its own directory (the process
   * works there), as the trail does: running from a subdirectory with --config ../x finds the same files.
   */
  async loaded(): Promise<LoadedConfig> {
    if (!this.loadedConfig) {
      this.loadedConfig = await loadConfig(this.io.cwd, this.flags.config);
      // --trail is resolved from where the command was started, before the move
      this.trailStore = await trailOf(this.loadedConfig, this.flags.trail, this.io.cwd, this.io.env);
      if (process.cwd() !== this.loadedConfig.dir) process.chdir(this.loadedConfig.dir);
    }
    return this.loadedConfig;
  }

  async hosts(): Promise<HostPool> {
    this.pool ??= new HostPool(await this.loaded());
    return this.pool;
  }

  /**
   * The trail. With `--trail dir` and no deploy file to be found (a trail copied from CI, the demo's),
   * the commands that only read it (trail, report) still work: nothing else needs the deploy file.
   */
  async trail(): Promise<TrailStore> {
    if (!this.flags.config && !this.loadedConfig && !findConfig(this.io.cwd)) {
      // a trail that lives elsewhere is read (and recovered from) without the deploy file
      if (this.flags.trail) {
        this.trailStore ??= fileTrail({ dir: resolve(this.io.cwd, this.flags.trail) });
        return this.trailStore;
      }
      if (this.io.env.ATOMKIT_TRAIL_URL) {
        this.trailStore ??= await trailFromUrl(this.io.env.ATOMKIT_TRAIL_URL, this.io.cwd);
        return this.trailStore;
      }
    }
    await this.loaded();
    return this.trailStore!;
  }

  async atoms(): Promise<Atoms> {
    return new Atoms(await this.loaded(), await this.hosts(), this.io.env);
  }

  vars(): Vars {
    const out: Vars = {};
    for (const v of this.flags.var) {
      const i = v.indexOf("=");
      if (i > 0) out[v.slice(0, i)] = v.slice(i + 1);
    }
    return out;
  }

  /** `--host a --host b,c` (config keys); default every host of the deploy file. */
  async hostKeys(): Promise<string[]> {
    const given = this.flags.host.flatMap((h) => h.split(",")).filter(Boolean);
    if (given.length) return [...new Set(given)];
    const names = (await this.hosts()).names();
    // no hosts is a mistake to name, not a reason to deploy to this machine
    if (!names.length)
      throw new AtomError(
        "ATOM_PARAMS_INVALID",
        `the deploy file ${(await this.loaded()).path} has no hosts`,
        {
          expected: "at least one host in defineConfig({ hosts: { … } })",
          found: "hosts: {}",
          hint: 'add one, e.g. hosts: { local: localHost() } (import { localHost } from "@atomkit/core"), or run `atomkit init` for a working example',
        },
      );
    return names;
  }

  /**
   * The selected hosts, opened, each named by its config key (or, given with --host, by the own name a
   * run recorded it under), with its config key.
   */
  async selectedHosts(): Promise<Array<{ key: string; host: KeyedHost }>> {
    const pool = await this.hosts();
    const out: Array<{ key: string; host: KeyedHost }> = [];
    for (const name of await this.hostKeys()) out.push(await pool.entry(name));
    return out;
  }

  /**
   * Opens the connections of the hosts a command is about to work on, in the background, so their
   * handshakes (and, over SSH, the login shell that starts the SFTP server) overlap what the command does
   * before it needs them: reading the trail to plan a rollback, building the atoms. Only as many as the
   * fleet runs at once, and none with --batch: a fleet keeps connections open only while it works on
   * them. A failure is left for the first real call, which reports it.
   */
  warm(hosts: ReadonlyArray<{ host: KeyedHost }>, spread: FleetSpread): void {
    if (spread.batch !== undefined) return;
    for (const { host } of hosts.slice(0, spread.concurrency ?? DEFAULT_FLEET_CONCURRENCY))
      this.warming.push(host.stat("/").catch(() => {}));
  }

  /**
   * Warm-ups still going: `close` waits for them first. One that outlived the command (a fleet closes
   * each host as it ends; a read retries on a new link) would otherwise reopen a connection after the
   * hosts were closed, and the process would never exit.
   */
  private readonly warming: Array<Promise<unknown>> = [];

  lockSettings(): LockSettings | false {
    const configured = this.loadedConfig?.config.lock;
    if (configured === false) return false;
    return {
      ...(configured ?? {}),
      ...(this.flags.lock ? { name: this.flags.lock } : {}),
      ...(this.flags["break-stale"] ? { breakStale: true } : {}),
    };
  }

  /** --batch, --concurrency: how a command spreads over hosts. Bad values are invalid input (exit 2). */
  spread(): FleetSpread {
    const out: FleetSpread = {};
    if (this.flags.batch !== undefined) out.batch = parseBatch(this.flags.batch);
    if (this.flags.concurrency !== undefined)
      out.concurrency = count(this.flags.concurrency, "--concurrency", 1);
    checkFleetOptions(out);
    out.onBatch = (b) => this.renderer.note(`batch ${b.index + 1}: ${b.hosts.join(", ")}`);
    return out;
  }

  /** --max-failures, --on-failure. */
  failurePolicy(): { maxFailures?: number; onFailure?: FleetFailurePolicy } {
    const out: { maxFailures?: number; onFailure?: FleetFailurePolicy } = {};
    if (this.flags["max-failures"] !== undefined)
      out.maxFailures = count(this.flags["max-failures"], "--max-failures", 0);
    const onFailure = this.flags["on-failure"];
    if (onFailure !== undefined) {
      if (!POLICIES.includes(onFailure as FleetFailurePolicy)) {
        throw new AtomError("ATOM_PARAMS_INVALID", "invalid --on-failure", {
          expected: POLICIES.join(", "),
          found: JSON.stringify(onFailure),
          hint: "e.g. --on-failure rollback-host",
        });
      }
      out.onFailure = onFailure as FleetFailurePolicy;
    }
    checkFleetOptions(out);
    return out;
  }

  /** Whether an id names a fleet run (its own records) rather than a host run. */
  async isFleet(id: string): Promise<boolean> {
    return (await readFleet(await this.trail(), id).catch(() => undefined)) !== undefined;
  }

  async close(): Promise<void> {
    this.renderer.done();
    await Promise.all(this.warming);
    await this.pool?.closeAll();
    await this.trailStore?.close?.();
  }
}

const POLICIES: readonly FleetFailurePolicy[] = ["rollback-all", "rollback-host", "halt"];

/** `--batch 2` or `--batch 1,25%,100%`; anything else is invalid input naming the flag and the text. */
export function parseBatch(text: string): number | Array<number | `${number}%`> {
  const parts = text.split(",").map((p) => p.trim());
  const parsed = parts.map((p) => {
    if (/^\d+(\.\d+)?%$/.test(p) && Number.parseFloat(p) > 0 && Number.parseFloat(p) <= 100)
      return p as `${number}%`;
    const n = strictNumber(p);
    if (!(Number.isInteger(n) && n >= 1)) {
      throw new AtomError("ATOM_PARAMS_INVALID", "invalid --batch", {
        expected: "batch sizes separated by commas: whole numbers of at least 1, or percentages up to 100%",
        found: JSON.stringify(text),
        hint: "e.g. --batch 1,25%,100% (one host, then a quarter, then the rest)",
      });
    }
    return n;
  });
  return parsed.length === 1 && typeof parsed[0] === "number" ? parsed[0] : parsed;
}

function strictNumber(text: string): number {
  return /^\d+$/.test(text) ? Number(text) : Number.NaN;
}

function count(text: string, flag: string, min: number): number {
  const n = strictNumber(text);
  if (!Number.isInteger(n) || n < min) {
    throw new AtomError("ATOM_PARAMS_INVALID", `invalid ${flag}`, {
      expected: `a whole number of at least ${min}`,
      found: JSON.stringify(text),
      hint: `e.g. ${flag} ${min + 1}`,
    });
  }
  return n;
}

// What the container kinds observe. A state says what serves — the name, the image (its id, and the
// tag asked), the config a service runs with, and whether it runs — and keeps the rest (container id,
// times, Docker's health of the moment, which run made it) under `evidence`: undo finds containers by
// it, but `same()` never compares it. Two observations of the same serving thing are the same state.
import { createHash } from "node:crypto";
import { deepEqual } from "@atomkit/core";
import type Docker from "dockerode";
import type { DockerClient } from "./_connection";
import { byName, LABEL } from "./_docker";
import { anyString, argv, bool, exactKeys, fail, type Input, join, object, string } from "./_validate";

export interface ContainerFacts {
  /** Without Docker's leading slash. */
  name: string;
  /** `ref`: the image as asked when the container was created (`registry.local/web:2`); `id`: what it runs. */
  image: { ref: string; id: string };
  /** As Docker holds them (the image's defaults filled in); null: none. */
  entrypoint: string[] | null;
  cmd: string[] | null;
  /** The names, sorted, and a SHA-256 of every `NAME=value`: values (secrets among them) never reach the trail. */
  env: { names: string[]; sha256: string };
  user: string;
  workdir: string;
  /** `host`, `none`, … */
  network: string;
  /** Published ports, `hostIp:hostPort->port/proto`, sorted (none with host networking). */
  ports: string[];
  /** By target; an anonymous volume's random name is left out (`source: ""`). */
  mounts: ContainerMount[];
  /** The container's labels without the bookkeeping ones these steps add (those are evidence). */
  labels: Record<string, string>;
  init: boolean;
  /** Docker's restart policy name; `"no"` when none. */
  restart: string;
  running: boolean;
  evidence: ContainerEvidence;
}

export interface ContainerMount {
  type: string;
  source: string;
  target: string;
  readOnly: boolean;
}

/** Identity and history: recorded for undo and for people, never compared. */
export interface ContainerEvidence {
  /** Undo finds the container by it (a rename does not lose it). */
  id: string;
  created: string;
  startedAt: string;
  finishedAt: string;
  /** Docker's `State.Status`: running, exited, paused, restarting… */
  status: string;
  /** Docker's HEALTHCHECK status at that moment, or null without one. */
  health: string | null;
  /** The `org.atomkit.*` labels these steps set: which kind, run and step made the container. */
  atomkit: Record<string, string>;
}

/** The state of docker.run, docker.stop and docker.remove: the container holding the name, or null. */
export interface ContainerState {
  current: ContainerFacts | null;
}

const OWN_LABELS: readonly string[] = Object.values(LABEL);
const ANONYMOUS_VOLUME = /^[0-9a-f]{64}$/;

export function factsOf(info: Docker.ContainerInspectInfo): ContainerFacts {
  const cfg = info.Config;
  const host = info.HostConfig ?? {};
  const env = [...(cfg.Env ?? [])].sort();
  const labels: Record<string, string> = {};
  const atomkit: Record<string, string> = {};
  for (const [k, v] of Object.entries(cfg.Labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (OWN_LABELS.includes(k)) atomkit[k] = v;
    else labels[k] = v;
  }
  const ports: string[] = [];
  for (const [port, binds] of Object.entries(host.PortBindings ?? {})) {
    for (const b of (binds as Array<{ HostIp?: string; HostPort?: string }> | null) ?? []) {
      ports.push(`${b.HostIp ?? ""}:${b.HostPort ?? ""}->${port}`);
    }
  }
  const mounts = (info.Mounts ?? [])
    .map(
      (m): ContainerMount => ({
        type: m.Type ?? "",
        source:
          m.Type === "volume"
            ? ANONYMOUS_VOLUME.test(m.Name ?? "")
              ? ""
              : (m.Name ?? "")
            : m.Type === "tmpfs"
              ? ""
              : (m.Source ?? ""),
        target: m.Destination,
        readOnly: m.RW === false,
      }),
    )
    .sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
  const state = info.State;
  return {
    name: info.Name.replace(/^\//, ""),
    image: { ref: cfg.Image, id: info.Image },
    entrypoint: asArgv(cfg.Entrypoint),
    cmd: asArgv(cfg.Cmd),
    env: {
      names: [...new Set(env.map((kv) => kv.split("=", 1)[0] ?? ""))].sort(),
      sha256: createHash("sha256").update(env.join("\0")).digest("hex"),
    },
    user: cfg.User ?? "",
    workdir: cfg.WorkingDir ?? "",
    network: host.NetworkMode ?? "",
    ports: ports.sort(),
    mounts,
    labels,
    init: (host as { Init?: boolean | null }).Init === true,
    restart: host.RestartPolicy?.Name || "no",
    running: state.Running === true,
    evidence: {
      id: info.Id,
      created: info.Created,
      startedAt: state.StartedAt ?? "",
      finishedAt: state.FinishedAt ?? "",
      status: state.Status ?? "",
      health: state.Health?.Status ?? null,
      atomkit,
    },
  };
}

function asArgv(v: string | string[] | null | undefined): string[] | null {
  if (v === null || v === undefined) return null;
  return typeof v === "string" ? [v] : [...v];
}

/** What serves: the facts without their evidence. */
export function meaning(facts: ContainerFacts | null): Omit<ContainerFacts, "evidence"> | null {
  if (!facts) return null;
  const { evidence: _, ...rest } = facts;
  return rest;
}

export function sameFacts(a: ContainerFacts | null, b: ContainerFacts | null): boolean {
  return deepEqual(meaning(a) as never, meaning(b) as never);
}

/**
 * The fields (besides `ignore`) in which `found` is not the container `want` describes: how undo makes
 * sure the container it found by id is still the one the trail recorded, before it restores it.
 */
export function differences(
  found: ContainerFacts,
  want: ContainerFacts,
  ignore: ReadonlyArray<keyof ContainerFacts> = [],
): string[] {
  const a = meaning(found) as Record<string, unknown>;
  const b = meaning(want) as Record<string, unknown>;
  return Object.keys(b).filter(
    (k) => !ignore.includes(k as keyof ContainerFacts) && !deepEqual(a[k] as never, b[k] as never),
  );
}

export async function observeContainer(
  c: DockerClient,
  name: string,
  signal?: AbortSignal,
): Promise<ContainerState> {
  const info = await byName(c, name, signal);
  return { current: info ? factsOf(info) : null };
}

// --- Checks of states read back from a trail (a trail is evidence, never a command) ---

const STATE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$/;
export const CONTAINER_ID = /^[0-9a-f]{64}$/;
const IMAGE_ID = /^sha256:[0-9a-f]{64}$/;
const FACT_KEYS = [
  "name",
  "image",
  "entrypoint",
  "cmd",
  "env",
  "user",
  "workdir",
  "network",
  "ports",
  "mounts",
  "labels",
  "init",
  "restart",
  "running",
  "evidence",
] as const;

export function checkContainerState(value: unknown): ContainerState {
  const o = object(value, "");
  exactKeys(o, "", ["current"]);
  return { current: o.current === null ? null : checkFacts(o.current, "current") };
}

export function checkFacts(value: unknown, path: string): ContainerFacts {
  const o = object(value, path);
  exactKeys(o, path, FACT_KEYS);
  const image = object(o.image, join(path, "image"));
  exactKeys(image, join(path, "image"), ["ref", "id"]);
  const env = object(o.env, join(path, "env"));
  exactKeys(env, join(path, "env"), ["names", "sha256"]);
  if (!Array.isArray(env.names)) fail(join(path, "env.names"), "must be an array of names");
  if (!Array.isArray(o.ports)) fail(join(path, "ports"), "must be an array");
  if (!Array.isArray(o.mounts)) fail(join(path, "mounts"), "must be an array");
  return {
    name: string(o.name, join(path, "name"), { pattern: STATE_NAME, hint: "a container name" }),
    image: {
      ref: string(image.ref, join(path, "image.ref")),
      id: string(image.id, join(path, "image.id"), { pattern: IMAGE_ID, hint: "sha256:<64 hex>" }),
    },
    entrypoint:
      o.entrypoint === null ? null : argv(o.entrypoint, join(path, "entrypoint"), { allowEmpty: true }),
    cmd: o.cmd === null ? null : argv(o.cmd, join(path, "cmd"), { allowEmpty: true }),
    env: {
      names: env.names.map((n, i) => anyString(n, join(path, `env.names.${i}`))),
      sha256: string(env.sha256, join(path, "env.sha256"), { pattern: /^[0-9a-f]{64}$/, hint: "64 hex" }),
    },
    user: anyString(o.user, join(path, "user")),
    workdir: anyString(o.workdir, join(path, "workdir")),
    network: anyString(o.network, join(path, "network")),
    ports: o.ports.map((p, i) => anyString(p, join(path, `ports.${i}`))),
    mounts: o.mounts.map((m, i) => checkMount(m, join(path, `mounts.${i}`))),
    labels: stringRecord(o.labels, join(path, "labels")),
    init: bool(o.init, join(path, "init")),
    restart: anyString(o.restart, join(path, "restart")),
    running: bool(o.running, join(path, "running")),
    evidence: checkEvidence(o.evidence, join(path, "evidence")),
  };
}

function checkMount(value: unknown, path: string): ContainerMount {
  const m = object(value, path);
  exactKeys(m, path, ["type", "source", "target", "readOnly"]);
  return {
    type: anyString(m.type, join(path, "type")),
    source: anyString(m.source, join(path, "source")),
    target: anyString(m.target, join(path, "target")),
    readOnly: bool(m.readOnly, join(path, "readOnly")),
  };
}

function checkEvidence(value: unknown, path: string): ContainerEvidence {
  const e = object(value, path);
  exactKeys(e, path, ["id", "created", "startedAt", "finishedAt", "status", "health", "atomkit"]);
  const atomkit = stringRecord(e.atomkit, join(path, "atomkit"));
  for (const k of Object.keys(atomkit)) {
    if (!OWN_LABELS.includes(k))
      fail(join(path, `atomkit.${k}`), `not a label these steps set (${OWN_LABELS.join(", ")})`);
  }
  return {
    id: containerId(e.id, join(path, "id")),
    created: anyString(e.created, join(path, "created")),
    startedAt: anyString(e.startedAt, join(path, "startedAt")),
    finishedAt: anyString(e.finishedAt, join(path, "finishedAt")),
    status: anyString(e.status, join(path, "status")),
    health: e.health === null ? null : anyString(e.health, join(path, "health")),
    atomkit,
  };
}

export function containerId(value: unknown, path: string): string {
  return string(value, path, { pattern: CONTAINER_ID, hint: "a full container id (64 hex)" });
}

export function stateName(value: unknown, path: string): string {
  return string(value, path, { pattern: STATE_NAME, hint: "a container name" });
}

function stringRecord(value: unknown, path: string): Record<string, string> {
  const o: Input = object(value, path);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) out[k] = anyString(v, join(path, k));
  return out;
}

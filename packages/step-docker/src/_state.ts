// What the container kinds observe. A state says what serves — the name, the image (its id, and the
// tag asked), the config a service runs with, and whether it runs — and keeps the rest (container id,
// times, Docker's health of the moment, which run made it) under `evidence`: undo finds containers by
// it, but `same()` never compares it. Two observations of the same serving thing are the same state.
import { createHash } from "node:crypto";
import {
  arrayOf,
  boolean,
  checkFields,
  deepEqual,
  nonEmptyString,
  nullable,
  ParamsFieldError,
  string,
  stringArray,
  stringRecord,
} from "@atomkit/core/kit";
import type Docker from "dockerode";
import type { DockerClient } from "./_connection";
import { byName, LABEL } from "./_docker";

/** What a container serves, as observed: what `same()` compares, plus `evidence` it never compares. */
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

/** One mount as observed (an anonymous volume's random name left out). */
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
const SHA256 = /^[0-9a-f]{64}$/;

// A state read back from a trail is evidence: every field present (checkFields refuses unknown keys),
// each checked by the kit's validators; Docker's own strings (user, network, times) are any string.
export function checkContainerState(value: unknown): ContainerState {
  return checkFields(value, { current: nullable(checkFacts) }) as ContainerState;
}

export function checkFacts(value: unknown, path: string): ContainerFacts {
  return checkFields<ContainerFacts>(
    value,
    {
      name: stateName,
      image: (v, p) =>
        checkFields(
          v,
          {
            ref: nonEmptyString,
            id: (v, p) => nonEmptyString(v, p, { pattern: IMAGE_ID, hint: "sha256:<64 hex>" }),
          },
          p,
        ),
      entrypoint: nullable(stringArray),
      cmd: nullable(stringArray),
      env: (v, p) =>
        checkFields(
          v,
          { names: stringArray, sha256: (v, p) => nonEmptyString(v, p, { pattern: SHA256, hint: "64 hex" }) },
          p,
        ),
      user: string,
      workdir: string,
      network: string,
      ports: stringArray,
      mounts: arrayOf(checkMount),
      labels: stringRecord,
      init: boolean,
      restart: string,
      running: boolean,
      evidence: checkEvidence,
    },
    path,
  ) as ContainerFacts;
}

function checkMount(value: unknown, path: string): ContainerMount {
  return checkFields<ContainerMount>(
    value,
    { type: string, source: string, target: string, readOnly: boolean },
    path,
  ) as ContainerMount;
}

function checkEvidence(value: unknown, path: string): ContainerEvidence {
  const e = checkFields<ContainerEvidence>(
    value,
    {
      id: containerId,
      created: string,
      startedAt: string,
      finishedAt: string,
      status: string,
      health: nullable(string),
      atomkit: stringRecord,
    },
    path,
  ) as ContainerEvidence;
  for (const k of Object.keys(e.atomkit)) {
    if (!OWN_LABELS.includes(k))
      throw new ParamsFieldError(
        `${path}.atomkit.${k}`,
        `expected a label these steps set (${OWN_LABELS.join(", ")}), found ${JSON.stringify(k)}`,
      );
  }
  return e;
}

export function containerId(value: unknown, path: string): string {
  return nonEmptyString(value, path, { pattern: CONTAINER_ID, hint: "a full container id (64 hex)" });
}

export function stateName(value: unknown, path: string): string {
  return nonEmptyString(value, path, { pattern: STATE_NAME, hint: "a container name" });
}

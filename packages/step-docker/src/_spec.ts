import type { StepContext } from "@atomkit/core";
import {
  absolutePath,
  argv,
  arrayOf,
  boolean,
  type CheckedFields,
  checkFields,
  type FieldChecks,
  integer,
  nonEmptyString,
  oneOf,
  optional,
  ParamsFieldError,
  stringArray,
  stringRecord,
} from "@atomkit/core/kit";
import type Docker from "dockerode";
import { type DockerConnection, parseConnection } from "./_connection";
import { LABEL } from "./_docker";
import { type ContainerHealthCheck, parseHealth } from "./_health";

/** What a container is made of: the params `docker.run` and `docker.swap` share. */
export interface ContainerSpec {
  /** The Docker daemon. Default: the local socket `/var/run/docker.sock`. */
  docker?: DockerConnection;
  /** The container's name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 100 characters). */
  name: string;
  /** An image already on the daemon (see `docker.image`), e.g. `registry.local/app:2`. */
  image: string;
  /** argv; default the image's CMD. Never a shell string. */
  cmd?: string[];
  entrypoint?: string[];
  env?: Record<string, string>;
  mounts?: MountSpec[];
  /** Default `"host"`. Only host or no networking (`"none"`): these steps never create networks. */
  network?: "host" | "none";
  user?: string;
  workdir?: string;
  /** Your own labels; `org.atomkit.*` is reserved for the labels the steps set. */
  labels?: Record<string, string>;
  /** Run an init process as PID 1 so the service gets SIGTERM on stop (Docker's `--init`). Default false. */
  init?: boolean;
  /** Docker restart policy. Default `"no"`. */
  restart?: "no" | "always" | "unless-stopped" | "on-failure";
  stopSignal?: string;
  /** How long a stop waits for the service before SIGKILL (rounded up to whole seconds). Default 10 000. */
  stopTimeoutMs?: number;
  /** A Docker HEALTHCHECK set on the container (argv, run with `CMD`); wait for it with `health: { docker: true }`. */
  healthcheck?: DockerHealthcheck;
  /** When the new container counts as healthy; see ContainerHealthCheck. */
  health?: ContainerHealthCheck;
}

/** One mount of the container: a bind of a host path, a named volume, or a tmpfs. */
export interface MountSpec {
  /** Default `"bind"`. */
  type?: "bind" | "volume" | "tmpfs";
  /** bind: an absolute path on the Docker host; volume: the volume's name; tmpfs: none. */
  source?: string;
  target: string;
  readOnly?: boolean;
}

/** A Docker HEALTHCHECK set on the container (`CMD` form): the command and its timing. */
export interface DockerHealthcheck {
  test: string[];
  intervalMs?: number;
  timeoutMs?: number;
  retries?: number;
  startPeriodMs?: number;
}

export const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,99}$/;
const NAME_HINT = "letters, digits, _ . - (starting with a letter or digit), at most 100 characters";
const IMAGE_RE = /^[a-zA-Z0-9][a-zA-Z0-9._/:@-]{0,254}$/;
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;

export function parseName(value: unknown, path = "name"): string {
  return nonEmptyString(value, path, { pattern: NAME_RE, hint: NAME_HINT });
}

export function parseImage(value: unknown, path = "image"): string {
  const hint = "an image reference such as repo/name:tag";
  const s = nonEmptyString(value, path, { pattern: IMAGE_RE, hint });
  if (s.includes("//")) throw new ParamsFieldError(path, `expected ${hint}, found ${JSON.stringify(s)}`);
  return s;
}

export function parseStopTimeout(value: unknown, path = "stopTimeoutMs"): number {
  return integer(value, path, { min: 0, max: 3_600_000, fallback: DEFAULT_STOP_TIMEOUT_MS });
}

/** The checks of every field a container spec has (docker.swap adds `order`). */
export const SPEC_CHECKS = {
  docker: (v: unknown, p: string) => parseConnection(v, p),
  name: parseName,
  image: parseImage,
  cmd: optional(argv),
  // [] clears the image's entrypoint
  entrypoint: optional(stringArray),
  env: optional((v, p) =>
    stringRecord(v, p, { keys: /^[A-Za-z_][A-Za-z0-9_.]*$/, keyHint: "a variable name such as APP_PORT" }),
  ),
  mounts: optional(arrayOf(parseMount)),
  network: (v: unknown, p: string) => oneOf(v, p, ["host", "none"] as const, { fallback: "host" }),
  user: optional((v, p) =>
    nonEmptyString(v, p, { pattern: /^[\w.-]+(:[\w.-]+)?$/, hint: "user[:group], names or ids" }),
  ),
  // "/" is a working directory like any other
  workdir: optional((v, p) => absolutePath(v, p, { allowRoot: true })),
  labels: optional(parseLabels),
  init: optional(boolean),
  restart: (v: unknown, p: string) =>
    oneOf(v, p, ["no", "always", "unless-stopped", "on-failure"] as const, { fallback: "no" }),
  stopSignal: optional((v, p) =>
    nonEmptyString(v, p, { pattern: /^(SIG)?[A-Z0-9+-]+$/, hint: "a signal name such as SIGTERM" }),
  ),
  stopTimeoutMs: parseStopTimeout,
  healthcheck: optional(parseHealthcheck),
  health: parseHealth,
};

/** A container spec from params: every invalid field (and unknown key) reported at once. */
export function parseContainerSpec<X extends object = object>(
  input: unknown,
  extra?: { [K in keyof X]-?: (value: unknown, path: string) => X[K] },
): Required<Pick<ContainerSpec, "docker" | "stopTimeoutMs">> & ContainerSpec & CheckedFields<X> {
  // one checkFields over both, so an unknown key is judged against all of them; TypeScript checks the
  // spec's part, not a generic X's
  return checkFields(input, { ...SPEC_CHECKS, ...extra } as typeof SPEC_CHECKS & FieldChecks<X>) as never;
}

function parseLabels(value: unknown, path: string): Record<string, string> {
  const labels = stringRecord(value, path, {
    keys: /^[a-zA-Z0-9][a-zA-Z0-9._/-]*$/,
    keyHint: "a label key such as com.example.team",
  });
  for (const k of Object.keys(labels)) {
    if (k.startsWith("org.atomkit."))
      throw new ParamsFieldError(`${path}.${k}`, "org.atomkit.* labels are set by the steps themselves");
  }
  return labels;
}

function parseHealthcheck(value: unknown, path: string): DockerHealthcheck {
  const ms = optional((v, p) => integer(v, p, { min: 1, max: 3_600_000 }));
  return checkFields(
    value,
    {
      test: argv,
      intervalMs: ms,
      timeoutMs: ms,
      startPeriodMs: ms,
      retries: optional((v, p) => integer(v, p, { min: 0, max: 1000 })),
    },
    path,
  );
}

function parseMount(value: unknown, path: string): MountSpec {
  const m = checkFields(
    value,
    {
      type: (v, p) => oneOf(v, p, ["bind", "volume", "tmpfs"] as const, { fallback: "bind" }),
      source: (v) => v,
      target: absolutePath,
      readOnly: optional(boolean),
    },
    path,
  );
  const out: MountSpec = { type: m.type, target: m.target };
  // binding the host's root is rare but legitimate
  if (m.type === "bind") out.source = absolutePath(m.source, `${path}.source`, { allowRoot: true });
  else if (m.type === "volume")
    out.source = nonEmptyString(m.source, `${path}.source`, { pattern: NAME_RE, hint: NAME_HINT });
  else if (m.source !== undefined)
    throw new ParamsFieldError(`${path}.source`, "expected no source (a tmpfs mount has none)");
  if (m.readOnly !== undefined) out.readOnly = m.readOnly;
  return out;
}

/** The labels on a container a step creates: leftovers are found by them, undo checks them before removing. */
export function labelsFor(ctx: StepContext, kind: string, spec: ContainerSpec): Record<string, string> {
  return {
    ...spec.labels,
    [LABEL.kind]: kind,
    [LABEL.step]: ctx.step,
    [LABEL.run]: ctx.runId,
    [LABEL.name]: spec.name,
    // a later undo health-checks this container again, possibly from another process
    ...(spec.health ? { [LABEL.health]: JSON.stringify(spec.health) } : {}),
  };
}

export function createOptions(
  spec: ContainerSpec,
  name: string,
  labels: Record<string, string>,
): Docker.ContainerCreateOptions {
  const hc = spec.healthcheck;
  const ns = (ms: number | undefined) => (ms === undefined ? undefined : ms * 1_000_000);
  return {
    name,
    Image: spec.image,
    ...(spec.cmd ? { Cmd: spec.cmd } : {}),
    ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
    Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
    Labels: labels,
    ...(spec.user ? { User: spec.user } : {}),
    ...(spec.workdir ? { WorkingDir: spec.workdir } : {}),
    ...(spec.stopSignal ? { StopSignal: spec.stopSignal } : {}),
    StopTimeout: Math.ceil((spec.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS) / 1000),
    ...(hc
      ? {
          Healthcheck: {
            Test: ["CMD", ...hc.test],
            ...(hc.intervalMs ? { Interval: ns(hc.intervalMs) } : {}),
            ...(hc.timeoutMs ? { Timeout: ns(hc.timeoutMs) } : {}),
            ...(hc.startPeriodMs ? { StartPeriod: ns(hc.startPeriodMs) } : {}),
            ...(hc.retries !== undefined ? { Retries: hc.retries } : {}),
          },
        }
      : {}),
    HostConfig: {
      NetworkMode: spec.network ?? "host",
      ...(spec.init ? { Init: true } : {}),
      RestartPolicy: { Name: spec.restart === "no" || !spec.restart ? "" : spec.restart },
      Mounts: (spec.mounts ?? []).map((m) => ({
        Type: m.type ?? "bind",
        Target: m.target,
        Source: m.source ?? "",
        ...(m.readOnly ? { ReadOnly: true } : {}),
      })),
    },
  };
}

import {
  absolutePath,
  argv,
  checkFields,
  env,
  envName,
  optional,
  ParamsFieldError,
  show,
} from "@atomkit/core/kit";
import { cwdOf, msOf, regexOf, signalOf } from "./_checks";
import { healthOf } from "./_health";
import type { StopProcessOptions, StopProcessParams } from "./stop";

export const KIND = "process.stop";

/** Validates `process.stop`'s options (every wrong field at once), defaults filled in. */
export function stopParams(input: StopProcessOptions): StopProcessParams {
  const o = checkFields(input, {
    pidFile: optional(absolutePath),
    match: optional(regexOf),
    signal: (v, p) => signalOf(v, p, "TERM"),
    graceMs: (v, p) => msOf(v, p, 10_000),
    env: (v, p): StopProcessParams["env"] => {
      if (v === undefined || v === "keep" || v === "none") return v ?? "keep";
      if (!Array.isArray(v))
        throw new ParamsFieldError(
          p,
          `expected "keep", "none" or a list of variable names, found ${show(v)}`,
        );
      return v.map((name, i) => envName(name, `${p}.${i}`));
    },
    secretEnv: optional(env),
    // these params as a trail holds them (validated again by recover and undo): the names, not the values
    secretEnvNames: optional((v, p) => {
      if (!Array.isArray(v))
        throw new ParamsFieldError(p, `expected a list of variable names, found ${show(v)}`);
      return v.map((n, i) => envName(n, `${p}.${i}`)).sort();
    }),
    logFile: (v, p) => (v === undefined ? "/dev/null" : absolutePath(v, p)),
    health: healthOf,
    minUptimeMs: (v, p) => msOf(v, p, 500),
    restart: optional(restartOf),
  });
  if ((o.pidFile === undefined) === (o.match === undefined)) {
    throw new ParamsFieldError(
      o.pidFile === undefined ? "pidFile" : "match",
      `expected exactly one of pidFile and match, found ${o.pidFile === undefined ? "neither" : "both"}`,
    );
  }
  const out: StopProcessParams = {
    signal: o.signal,
    graceMs: o.graceMs,
    env: o.env,
    secretEnvNames: o.secretEnv ? Object.keys(o.secretEnv).sort() : [],
    logFile: o.logFile,
    minUptimeMs: o.minUptimeMs,
  };
  if (o.pidFile !== undefined) out.pidFile = o.pidFile;
  if (o.match !== undefined) out.match = o.match;
  if (o.secretEnv !== undefined) out.secretEnv = o.secretEnv;
  if (o.secretEnvNames !== undefined) {
    if (o.secretEnv !== undefined && o.secretEnvNames.join() !== out.secretEnvNames.join()) {
      throw new ParamsFieldError(
        "secretEnvNames",
        `expected exactly the names of secretEnv (${out.secretEnvNames.join(", ")}), found ${o.secretEnvNames.join(", ")}`,
      );
    }
    out.secretEnvNames = o.secretEnvNames;
  }
  if (o.restart !== undefined) out.restart = o.restart;
  if (o.health) out.health = o.health;
  if (o.health && "logLine" in o.health && out.logFile === "/dev/null") {
    // the original's own log is used when it had one; this is the fallback the check must be able to read
    throw new ParamsFieldError(
      "logFile",
      "expected a log file for the logLine health check to read, found none",
    );
  }
  return out;
}

function restartOf(value: unknown, path: string): NonNullable<StopProcessParams["restart"]> {
  const r = checkFields(value, { cwd: optional(cwdOf), command: optional(argv) }, path);
  const out: NonNullable<StopProcessParams["restart"]> = {};
  if (r.cwd !== undefined) out.cwd = r.cwd;
  if (r.command !== undefined) out.command = r.command;
  return out;
}

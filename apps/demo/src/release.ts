import { type Atom, atom, type Step } from "@atomkit/core";
import { makeDir, removePath, untar, uploadFile, writeFile } from "@atomkit/step-fs";
import { startProcess, stopProcess } from "@atomkit/step-process";
import { swapSymlink } from "@atomkit/step-symlink";

export interface ReleaseOptions {
  /** Directory of the app on the host: releases/, current, app.pid, app.log, drain, uploads/. */
  base: string;
  version: string;
  /** The release tarball on this machine. */
  tarball: string;
  port: number;
  /** Make this step fail right after it applied (the demo's `--fail-at`). */
  failAt?: string;
  /** The node binary on the host. */
  node?: string;
  /** Environment of the app (kept through every rollback: it is part of the launch). */
  env?: Record<string, string>;
  /** Secret environment of the app: set at start, never in the trail; stop's undo gets it back from here. */
  secretEnv?: Record<string, string>;
  /**
   * How long the new process may take to answer GET /health. Default 60 000: a release that starts
   * gets time on a busy machine (a release known to be broken can fail faster).
   */
  healthTimeoutMs?: number;
}

/**
 * The release of DESIGN.md, in code:
 *   pre    drain      write the drain flag (the app answers 503 on / while it exists)
 *   steps  upload     the tarball to the host
 *          unpack     untar it into releases/<version> (safe extraction, temp dir + rename)
 *          stop       the old process (undo: start it again exactly as it was)
 *          link       current → releases/<version> (atomic rename of a temporary link)
 *          start      the new process, healthy on GET /health
 *   post   undrain    remove the drain flag
 */
export function releaseAtom(o: ReleaseOptions): Atom {
  const b = o.base;
  const pidFile = `${b}/app.pid`;
  const steps: Step[] = [
    uploadFile({ source: o.tarball, path: `${b}/uploads/app-${o.version}.tar.gz` }, { name: "upload" }),
    untar({ archive: o.tarball, path: `${b}/releases/${o.version}` }, { name: "unpack" }),
    // a process.start launch is restarted from its launch record: argv, release dir, env (secrets from here)
    stopProcess(
      { pidFile, graceMs: 3_000, ...(o.secretEnv ? { secretEnv: o.secretEnv } : {}) },
      { name: "stop" },
    ),
    swapSymlink({ link: `${b}/current`, target: `${b}/releases/${o.version}` }, { name: "link" }),
    startProcess(
      {
        command: [o.node ?? process.execPath, "server.cjs", String(o.port), `${b}/drain`],
        cwd: `${b}/current`,
        env: { ...(o.env ?? {}), ...(o.secretEnv ?? {}) },
        pidFile,
        logFile: `${b}/app.log`,
        health: {
          http: { port: o.port, path: "/health" },
          timeoutMs: o.healthTimeoutMs ?? 60_000,
          intervalMs: 100,
        },
      },
      { name: "start", secret: Object.keys(o.secretEnv ?? {}).map((k) => `env.${k}`) },
    ),
  ];
  const pre = [writeFile({ path: `${b}/drain`, content: `draining for ${o.version}\n` }, { name: "drain" })];
  const post = [removePath({ path: `${b}/drain` }, { name: "undrain" })];
  const inject = (s: Step) => (s.name === o.failAt ? failAfterApply(s) : s);
  return atom("release", { pre: pre.map(inject), steps: steps.map(inject), post: post.map(inject) });
}

/** The same step, whose apply throws after it did its work: a failure inside the step (`--fail-at`). */
function failAfterApply(step: Step): Step {
  const definition = {
    ...step.definition,
    apply: async (...args: Parameters<Step["definition"]["apply"]>) => {
      await step.definition.apply(...args);
      throw new Error(`injected failure in "${step.name}" (--fail-at), after its change was made`);
    },
  };
  return Object.freeze({ ...step, definition });
}

/** Prepares a host once (like Capistrano's deploy:setup): the app's directories. */
export function setupAtom(base: string): Atom {
  return atom("setup", {
    steps: [
      makeDir({ path: `${base}/releases` }, { name: "releases-dir" }),
      makeDir({ path: `${base}/uploads` }, { name: "uploads-dir" }),
    ],
  });
}

export const STEP_NAMES = ["drain", "upload", "unpack", "stop", "link", "start", "undrain"];

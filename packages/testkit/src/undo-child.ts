import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Host, Step } from "@atomkit/core";
import { runInChild } from "./child";

/** How a new process builds the host the step acts on: `(await import(module))[export](...args)`. */
export interface ChildHost {
  /** Absolute path, `file:` URL or package name (resolved from the test's cwd). */
  module: string | URL;
  /** Name of the module's export that makes the host, e.g. `"sshHost"`. */
  export: string;
  /** JSON arguments of that function, e.g. sshHost's options. */
  args?: readonly unknown[];
}

/**
 * The undo a new process makes (`recover`, `atomkit undo <runId>`): the child gets nothing but JSON
 * (params as validated, the recorded states with secrets masked as the trail holds them) on stdin,
 * loads the kind from its module, validates the params again and calls undo. A kind that keeps its
 * before-state in module memory restores nothing there.
 */
export async function undoInChild(job: {
  step: Step;
  params: unknown;
  before: unknown;
  after: unknown;
  host: Host;
  kindModule?: string | URL | undefined;
  childHost?: ChildHost | undefined;
}): Promise<void> {
  const { step, host } = job;
  if (!host.local && !job.childHost) throw new Error("testkit: a non-local host needs childHost");
  const modules = job.kindModule ? [specifier(job.kindModule)] : defaultModules(step);
  if (!modules.length) {
    throw new Error(
      `testkit: a new process cannot load the kind ${step.kind}: give its definition a \`package\`, run the ` +
        "tests from the package that exports it, or pass `kindModule` (a built JS module) to the contract",
    );
  }
  const input = JSON.stringify({
    kind: step.kind,
    name: step.name,
    modules,
    host: job.childHost
      ? { ...job.childHost, module: specifier(job.childHost.module) }
      : { stateDir: host.stateDir },
    secret: [...(step.definition.secret ?? []), ...(step.options.secret ?? [])],
    params: job.params,
    before: job.before,
    after: job.after,
  });
  const child = runInChild({ source: CHILD_SOURCE }, { input });
  const end = await child.exited;
  if (end.code !== 0) {
    throw new Error(
      `undo in a new process (as recover or \`atomkit undo\` runs it) failed (${end.signal ?? `exit ${end.code}`}):\n` +
        (end.stderr.trim() || end.stdout.trim() || "(no output)"),
    );
  }
}

const specifier = (m: string | URL): string =>
  m instanceof URL ? m.href : m.startsWith("/") ? pathToFileURL(m).href : m;

/** The kind's own `package`, then the package whose tests run (the one in the cwd), as built. */
function defaultModules(step: Step): string[] {
  const out = step.definition.package ? [step.definition.package] : [];
  try {
    const name = (JSON.parse(readFileSync(join(process.cwd(), "package.json"), "utf8")) as { name?: string })
      .name;
    if (name && !out.includes(name)) out.push(name);
  } catch {
    // no package.json in the cwd: only the kind's own package
  }
  return out;
}

// Plain ESM run with `node --eval` from the test's cwd, so package names resolve as the tests' do
// (the built `dist` of the package under test: build before testing, as `turbo test` does).
const CHILD_SOURCE = `
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const job = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const core = await import("@atomkit/core");
const { Redactor } = await import("@atomkit/core/kit");
const isKind = (v) => typeof v === "function" && v.kind === job.kind && v.definition;
let kind;
const tried = [];
for (const m of job.modules) {
  let mod;
  try { mod = await import(m); } catch (e) { tried.push(m + ": " + e.message); continue; }
  const values = Object.values(mod).flatMap((v) => (Array.isArray(v) ? v : [v]));
  kind = values.find(isKind);
  if (kind) break;
  tried.push(m + ": exports no step kind " + job.kind);
}
if (!kind) {
  console.error("testkit: could not load the kind " + job.kind + " in a new process:\\n  " + tried.join("\\n  ") +
    "\\nhint: build the package (the new process loads its dist), or pass kindModule to the contract");
  process.exit(3);
}
const step = kind(job.params, { name: job.name, secret: job.secret });
const v = await core.validateParams(step);
if (v.issues) {
  console.error("testkit: the kind refused its own params read back from JSON: " + JSON.stringify(v.issues));
  process.exit(4);
}
const host = job.host.module
  ? await (await import(job.host.module))[job.host.export](...(job.host.args ?? []))
  : core.localHost({ stateDir: job.host.stateDir });
const redactor = new Redactor();
redactor.add(v.value, job.secret);
const ctx = { host, signal: new AbortController().signal, runId: "testkit-undo-child", step: job.name,
  log: () => {}, redact: (x) => redactor.scrub(x) };
try {
  await kind.definition.undo(ctx, v.value, job.before, job.after);
} catch (e) {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
} finally {
  await host.close?.().catch(() => {});
}
process.exit(0);
`;

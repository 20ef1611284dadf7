import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { AtomError, type TrailStore } from "@atomkit/core";
import type { Context } from "../context";
import { EXIT } from "../exit-codes";
import { renderHistory } from "../html/history-page";
import { reportModel } from "../html/model";
import { renderRunReport } from "../html/run-page";

/**
 * `atomkit report [<runId|fleetId> | --last] [-o file]` and `atomkit report --history [--host h]`: one
 * self-contained HTML file read from the trail alone (no host is contacted). Written beside the trail
 * (`.atomkit/reports/`) unless `-o` says where; `-o -` writes it to stdout.
 */
export async function reportCommand(ctx: Context, id?: string): Promise<number> {
  const trail = await ctx.trail();
  const { flags } = ctx;
  if (flags.history && (id || flags.last))
    throw new AtomError(
      "ATOM_PARAMS_INVALID",
      "`--history` reports every run: it takes no run id nor --last",
      {
        hint: "atomkit report --history [--host h]   or   atomkit report <runId|fleetId>",
      },
    );
  let name: string;
  let text: string;
  if (flags.history) {
    const hosts = flags.host.flatMap((h) => h.split(",")).filter(Boolean);
    text = renderHistory(await trail.listRuns(), { hosts });
    name = "history";
  } else {
    const target = id ?? (flags.last ? await lastId(trail) : undefined);
    if (!target)
      throw new AtomError("ATOM_PARAMS_INVALID", "`atomkit report` needs a run id, a fleet id or --last", {
        hint: "atomkit report --last   (`atomkit trail` lists the runs)",
      });
    const model = await reportModel(trail, target);
    if (!model) {
      ctx.io.stderr.write(`no run or fleet ${target} in the trail\nsee: atomkit trail\n`);
      return EXIT.invalid;
    }
    text = renderRunReport(model);
    name = target;
  }
  if (flags.output === "-") {
    ctx.io.stdout.write(text);
    return EXIT.ok;
  }
  const file = flags.output
    ? resolve(ctx.io.cwd, flags.output)
    : join(reportsDir(trail, ctx.io.cwd), `${name.replace(/[^A-Za-z0-9_.-]/g, "_")}.html`);
  await mkdir(dirname(file), { recursive: true });
  // whole or not at all: a browser or a CI upload never sees half a report
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, text);
  await rename(temp, file);
  ctx.io.stdout.write(`${file}\n`);
  return EXIT.ok;
}

/** The run or fleet started last (listRuns is oldest first): a fleet's host runs are reported as their fleet. */
async function lastId(trail: TrailStore): Promise<string> {
  const last = (await trail.listRuns()).filter((r) => r.status !== "corrupt").pop();
  if (!last)
    throw new AtomError("ATOM_PARAMS_INVALID", "the trail holds no run to report", {
      hint: "run a deploy first: atomkit run <atom>",
    });
  return last.fleet ?? last.runId;
}

function reportsDir(trail: TrailStore, cwd: string): string {
  const dir = (trail as { dir?: unknown }).dir;
  return typeof dir === "string" ? join(dirname(dir), "reports") : cwd;
}

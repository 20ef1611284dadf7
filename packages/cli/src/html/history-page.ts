import type { RunSummary } from "@atomkit/core";
import { liveRuns, MASK, undoneRuns } from "@atomkit/core/kit";
import type { RunMeta } from "../atoms";
import { anchor, duration, extent, html, iso, type Markup, outcomeClass, show } from "./markup";
import { page } from "./page";

// Runs over time, host by host: what is live now (per atom), every run with its vars and outcome, and
// undos linked both ways to the runs they reversed.

export interface HistoryOptions {
  hosts?: readonly string[];
  generatedAt?: number;
}

export function renderHistory(all: readonly RunSummary[], options: HistoryOptions = {}): string {
  const runs = options.hosts?.length ? all.filter((r) => options.hosts!.includes(r.host)) : [...all];
  const hosts = [...new Set(runs.map((r) => r.host))].sort();
  const undone = undoneRuns(all);
  const { min, max } = extent(runs.map((r) => Date.parse(r.startedAt)));
  const known = Number.isFinite(min);
  const t0 = known ? min : 0;
  const t1 = known ? Math.max(t0 + 1, max) : 1;
  // a run whose start time is unreadable (a corrupt file) sits at the left edge
  const pct = (t: number) => `${((((Number.isFinite(t) ? t : t0) - t0) / (t1 - t0)) * 96 + 2).toFixed(2)}%`;
  const body = html`<header><h1>Deploy history <span class="mut">· ${hosts.length} host${hosts.length === 1 ? "" : "s"}, ${runs.length} run${runs.length === 1 ? "" : "s"}</span></h1>
${runs.length ? html`<p class="mut">${known ? `From ${iso(t0)} to ${iso(max)}.` : "No readable start times."}</p>` : html`<p class="summary">No runs in the trail${options.hosts?.length ? ` for ${options.hosts.join(", ")}` : ""}.</p>`}</header>
${
  runs.length
    ? html`<section><h2>Live now</h2><table class="hist"><tr><th>host</th><th>atom</th><th>serving since</th><th>run</th><th>vars</th><th>previous release</th></tr>${hosts.flatMap((h) => liveRows(all, h))}</table></section>
<section><h2>Runs over time</h2><p class="legend"><span><i class="o-committed"></i>committed</span><span><i class="o-rolled-back"></i>rolled back / undo</span><span><i class="o-rollback-failed"></i>failed or unfinished</span></p>
<div class="tl">${hosts.map(
        (h) =>
          html`<div class="row"><a class="rh" href="#${anchor("host", h)}">${h}</a><div class="dots">${runs
            .filter((r) => r.host === h)
            .map(
              (r) =>
                html`<a class="dot o-${dotClass(r)}" href="#${anchor("run", r.runId)}" style="left:${pct(Date.parse(r.startedAt))}" title="${r.runId} · ${r.mode} of ${r.atom} · ${r.status}"></a>`,
            )}</div></div>`,
      )}</div></section>
<section><h2>Runs by host</h2>${hosts.map((h) => hostTable(h, runs, undone))}</section>`
    : ""
}
<footer>Made by <code>atomkit report --history</code> from the trail at ${new Date(options.generatedAt ?? Date.now()).toISOString()}.</footer>`;
  return page(`atomkit · history${options.hosts?.length ? ` · ${options.hosts.join(", ")}` : ""}`, body);
}

function dotClass(r: RunSummary): string {
  if (r.status === "committed" && r.mode === "run") return "committed";
  if (r.status === "rolled-back" || r.mode === "undo")
    return r.status === "rollback-failed" ? "rollback-failed" : "rolled-back";
  return "rollback-failed";
}

function liveRows(all: readonly RunSummary[], host: string): Markup[] {
  const atoms = [...new Set(all.filter((r) => r.host === host).map((r) => r.atom))].sort();
  return atoms.flatMap((atom) => {
    const live = liveRuns(all, { host, atom });
    const now = live[0];
    if (!now)
      return [
        html`<tr><td>${host}</td><td>${atom}</td><td colspan="4" class="mut">nothing live (every run rolled back or undone)</td></tr>`,
      ];
    const prev = live[1];
    return [
      html`<tr class="live"><td>${host}</td><td>${atom}</td><td class="when">${now.endedAt ?? now.startedAt}</td><td><a class="mono" href="#${anchor("run", now.runId)}">${now.runId}</a></td><td class="mono">${vars(now)}</td><td>${prev ? html`<a class="mono" href="#${anchor("run", prev.runId)}">${prev.runId}</a> <span class="mono mut">${vars(prev)}</span>` : html`<span class="mut">none (first release)</span>`}</td></tr>`,
    ];
  });
}

function hostTable(host: string, runs: readonly RunSummary[], undone: Map<string, string>): Markup {
  const own = runs.filter((r) => r.host === host);
  return html`<details class="host" id="${anchor("host", host)}" open><summary>${host} <span class="mut">${own.length} run${own.length === 1 ? "" : "s"}</span></summary>
<table class="hist"><tr><th>started</th><th>run</th><th>atom</th><th>mode</th><th>outcome</th><th>vars</th><th>duration</th><th>links</th></tr>${own.map(
    (r) => {
      const links: Markup[] = [];
      if (r.undoOf)
        links.push(html`undo of <a class="mono" href="#${anchor("run", r.undoOf)}">${r.undoOf}</a>`);
      const by = undone.get(r.runId);
      if (by) links.push(html`undone by <a class="mono" href="#${anchor("run", by)}">${by}</a>`);
      if (r.fleet) links.push(html`<span class="mut">fleet ${r.fleet}</span>`);
      return html`<tr id="${anchor("run", r.runId)}"><td class="when">${r.startedAt}</td><td class="mono">${r.runId}</td><td>${r.atom}</td><td>${r.mode}</td><td><span class="badge o-${outcomeClass(r.status)}">${r.status}</span>${r.recovered ? " (recovered)" : ""}${r.problem ? html` <span class="bad">${show(r.problem, 200)}</span>` : ""}</td><td class="mono">${vars(r)}</td><td>${r.endedAt ? duration(Date.parse(r.endedAt) - Date.parse(r.startedAt)) : r.status === "unfinished" ? "unfinished" : ""}</td><td>${links.length ? links.map((l, i) => html`${i ? html`<br>` : ""}${l}`) : ""}</td></tr>`;
    },
  )}</table></details>`;
}

function vars(r: RunSummary): string {
  const meta = (r.meta ?? {}) as Partial<RunMeta>;
  return [
    ...Object.entries(meta.vars ?? {}).map(([k, v]) => `${k}=${show(String(v), 120)}`),
    ...(meta.secretVars ?? []).map((k) => `${k}=${MASK}`),
  ].join(" ");
}

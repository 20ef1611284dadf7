import type { ErrorInfo, Json } from "@atomkit/core";
import { diffStates } from "./diff";
import { anchor, duration, extent, html, iso, type Markup, outcomeClass, show } from "./markup";
import type { HostModel, HostOutcome, ReportModel, RunModel, Segment, StepModel } from "./model";
import { page } from "./page";

// A run or fleet report: the outcome first (what a person opening it after a failed deploy wants to
// know), then the timeline across hosts, then hosts grouped by outcome with every step's detail.

const OUTCOME_ORDER: HostOutcome[] = [
  "rollback-failed",
  "unfinished",
  "refused",
  "rolled-back",
  "committed",
  "not-run",
];
const OUTCOME_LABEL: Record<HostOutcome, string> = {
  "rollback-failed": "rollback failed: still changed",
  unfinished: "unfinished (run atomkit recover)",
  refused: "refused before any change",
  "rolled-back": "rolled back",
  committed: "committed",
  "not-run": "not run",
};

export function renderRunReport(m: ReportModel): string {
  const title = `atomkit · ${m.atom} · ${m.outcome}${m.kind === "fleet" ? ` · ${m.hosts.length} hosts` : ` · ${m.hosts[0]?.host ?? ""}`}`;
  return page(
    title,
    html`${header(m)}
<section id="timeline"><h2>Timeline</h2>${timeline(m)}</section>
<section id="hosts"><h2>${m.kind === "fleet" ? "Hosts" : "Steps"}</h2>${hostGroups(m)}</section>
<footer>Made by <code>atomkit report</code> from the trail at ${iso(m.generatedAt)}. Times are when the trail recorded each step's records; states and params are as the trail holds them (secrets masked).</footer>`,
  );
}

function header(m: ReportModel): Markup {
  const count = (o: HostOutcome) => m.hosts.filter((h) => h.outcome === o).length;
  const counts = OUTCOME_ORDER.filter((o) => count(o) > 0).map(
    (o) => html`<span><span class="badge o-${outcomeClass(o)}">${count(o)}</span> ${OUTCOME_LABEL[o]}</span>`,
  );
  const what =
    m.kind === "fleet"
      ? `fleet ${m.mode === "undo" ? "undo" : "run"} on ${m.hosts.length} host${m.hosts.length === 1 ? "" : "s"}`
      : `${m.mode} on ${m.hosts[0]?.host}`;
  return html`<header>
<h1><span class="badge o-${outcomeClass(m.outcome)}">${m.outcome}</span> ${m.atom} <span class="mut">· ${what}</span></h1>
${summary(m)}
<dl class="meta">
<dt>${m.kind === "fleet" ? "fleet id" : "run id"}</dt><dd class="mono">${m.id}</dd>
${m.undoOf ? html`<dt>undo of</dt><dd class="mono">${m.undoOf}</dd>` : ""}
<dt>vars</dt><dd class="mono">${m.vars.length ? m.vars.map(([k, v]) => `${k}=${show(v, 200)}`).join("  ") : "—"}</dd>
<dt>by</dt><dd>${m.owner ?? "?"} <span class="mut">on ${m.machine}, pid ${m.pid}</span></dd>
<dt>started</dt><dd>${iso(m.startedAt)}</dd>
<dt>duration</dt><dd>${m.endedAt !== undefined ? duration(m.endedAt - m.startedAt) || "?" : "unfinished"}</dd>
${m.kind === "fleet" ? html`<dt>hosts</dt><dd class="counts">${counts}</dd>` : ""}
${m.batches > 1 ? html`<dt>batches</dt><dd>${m.batches}</dd>` : ""}
</dl></header>`;
}

/** One sentence on what happened, as a person would say it. */
function summary(m: ReportModel): Markup {
  const failedHost = m.failure ? m.hosts.find((h) => h.host === m.failure!.host) : undefined;
  const failedStep = failedHost?.runs[0]?.steps.find((s) => s.name === m.failure?.step);
  const why = failedStep?.error ? firstLine(failedStep.error) : undefined;
  const undos = m.hosts.flatMap((h) => h.runs.flatMap((r) => r.steps)).filter((s) => s.status === "undone");
  const unverified = m.hosts
    .flatMap((h) => h.runs.flatMap((r) => r.steps))
    .filter((s) => s.status === "undo-failed" || s.status === "drift");
  const where = m.failure
    ? html` Step <b>${m.failure.step}</b> on <b>${m.failure.host}</b>: ${why ?? "failed"}.`
    : "";
  switch (m.outcome) {
    case "committed":
      return html`<p class="summary ok">Every step applied${m.kind === "fleet" ? ` on all ${m.hosts.length} hosts` : ""}.${m.mode === "undo" ? html` Every undo verified: what ran before serves again.` : ""}</p>`;
    case "rolled-back":
      return html`<p class="summary rb">${where} Rolled back: ${undos.length} undo${undos.length === 1 ? "" : "s"}${m.kind === "fleet" ? ` across ${m.hosts.filter((h) => h.runs.some((r) => r.steps.some((s) => s.status === "undone"))).length} host(s)` : ""}, every one verified — the ${m.kind === "fleet" ? "hosts are" : "host is"} as before the run.</p>`;
    case "partial":
      return html`<p class="summary rb">${where} Some hosts committed, the others rolled back (every undo verified).</p>`;
    case "rollback-failed":
      return html`<p class="summary bad">${where} The rollback did not finish: ${unverified.length} step(s) could not be undone and verified. Those hosts are in a mixed state; fix what stopped it, then run <code>atomkit recover ${m.id}</code>.</p>`;
    default:
      return html`<p class="summary bad">The run did not finish (its process died or still runs). Run <code>atomkit recover</code> to finish it.</p>`;
  }
}

// --- timeline ---

const PHASES = ["apply", "check", "undo", "verify", "drift"] as const;

function timeline(m: ReportModel): Markup {
  const segs = m.hosts.flatMap((h) => h.runs.flatMap((r) => r.steps.flatMap((s) => s.segments)));
  const starts = extent([m.startedAt, ...m.hosts.flatMap((h) => h.runs.map((r) => r.startedAt))]);
  const t0 = Number.isFinite(starts.min) ? starts.min : extent(segs.map((g) => g.from)).min;
  const ends = extent(
    (function* () {
      yield m.endedAt ?? Number.NaN;
      for (const g of segs) yield g.to;
      for (const h of m.hosts) for (const r of h.runs) yield r.endedAt ?? Number.NaN;
    })(),
  );
  const t1 = Math.max(t0 + 1, Number.isFinite(ends.max) ? ends.max : t0 + 1);
  const span = t1 - t0;
  const pct = (t: number) => `${(((t - t0) / span) * 100).toFixed(3)}%`;
  const width = (a: number, b: number) => `${(((b - a) / span) * 100).toFixed(3)}%`;
  const rows: Markup[] = [];
  let batch = -1;
  for (const h of m.hosts.slice().sort((a, b) => a.batch - b.batch)) {
    if (m.batches > 1 && h.batch !== batch) {
      batch = h.batch;
      rows.push(html`<div class="batch">batch ${batch + 1}</div>`);
    }
    const own = h.runs.flatMap((r) => r.steps.flatMap((s) => s.segments));
    rows.push(
      html`<div class="row"><a class="rh" href="#${anchor("host", h.host)}" title="${h.host}: ${h.outcome}">${h.host}</a><div class="lane">${own.map(
        (g) =>
          html`<span class="seg p-${g.phase}${g.failed ? " failed" : ""}${g.interrupted ? " interrupted" : ""}" style="left:${pct(g.from)};width:${width(g.from, g.to)}" title="${segTitle(g)}"></span>`,
      )}</div></div>`,
    );
  }
  const ticks = tickMarks(span).map(
    (t) => html`<span style="left:${pct(t0 + t)}">${duration(t) || "0"}</span>`,
  );
  const overlay = html`<div class="over">${m.rollback ? html`<div class="rbband" style="left:${pct(m.rollback.from)};width:${width(m.rollback.from, m.rollback.to)}"><b>rollback ${duration(m.rollback.to - m.rollback.from)}</b></div>` : ""}${m.failure ? html`<div class="fline" style="left:${pct(m.failure.at)}"><b>✗ ${m.failure.step} on ${m.failure.host}</b></div>` : ""}</div>`;
  return html`<p class="legend">${PHASES.map((p) => html`<span><i class="p-${p}"></i>${p}</span>`)}<span><i class="seg failed" style="position:static"></i>failed</span></p>
<div class="tl"><div class="axis"><span class="rh">host</span><div class="ticks">${ticks}</div></div>${rows}${overlay}</div>`;
}

function segTitle(g: Segment): string {
  return `${g.step} · ${g.phase} ${duration(g.to - g.from) || "0 ms"}${g.failed ? " · failed" : ""}${g.interrupted ? " · cut short (process died)" : ""}`;
}

/** About six round marks across the span (1, 2 or 5 × a power of ten milliseconds apart). */
function tickMarks(span: number): number[] {
  const raw = span / 6;
  const pow = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  const step = [1, 2, 5, 10].map((f) => f * pow).find((s) => s >= raw) ?? pow * 10;
  const out: number[] = [];
  for (let t = 0; t <= span; t += step) out.push(t);
  return out;
}

// --- hosts and steps ---

function hostGroups(m: ReportModel): Markup {
  const single = m.kind === "run";
  return html`${OUTCOME_ORDER.map((o) => {
    const list = m.hosts.filter((h) => h.outcome === o);
    if (!list.length) return "";
    if (single) return list.map((h) => hostBody(h));
    // problems open; the quiet majority folded once the fleet is large
    const open = o !== "committed" && o !== "not-run" ? true : list.length <= 20;
    return html`<details class="group" ${open ? "open" : ""}><summary><span class="badge o-${outcomeClass(o)}">${list.length}</span> ${OUTCOME_LABEL[o]}</summary>${list.map((h) => hostDetails(h, m.hosts.length <= 8 || (o !== "committed" && o !== "rolled-back") || h.host === m.failure?.host))}</details>`;
  })}`;
}

function hostDetails(h: HostModel, open: boolean): Markup {
  const failed = h.failedStep ? html` <span class="why">✗ ${h.failedStep}</span>` : "";
  const vars = h.ownVars
    ? html` <span class="mono mut">${h.ownVars.map(([k, v]) => `${k}=${show(v, 120)}`).join(" ")}</span>`
    : "";
  return html`<details class="host" id="${anchor("host", h.host)}" ${open ? "open" : ""}><summary>${h.host} <span class="badge o-${outcomeClass(h.outcome)}">${h.outcome}</span>${failed}${vars}</summary>${hostBody(h)}</details>`;
}

function hostBody(h: HostModel): Markup {
  if (!h.runs.length)
    return html`<p class="mut">No run on this host: the fleet stopped before it, or it was refused before any change.</p>`;
  return html`${h.runs.map((r) => runBlock(r))}`;
}

function runBlock(r: RunModel): Markup {
  const kind =
    r.mode === "undo"
      ? html`undo of <a class="mono" href="#${anchor("run", r.undoOf ?? "")}">${r.undoOf}</a>`
      : "run";
  return html`<div class="run" id="${anchor("run", r.runId)}"><h4><span class="mono">${r.runId}</span> · ${kind} · <span class="badge o-${outcomeClass(r.status)}">${r.status}</span>${r.recovered ? " (finished by recover)" : ""} <span class="mut">${r.endedAt !== undefined ? duration(r.endedAt - r.startedAt) : ""}${r.owner ? ` · ${r.owner}` : ""}</span></h4>
${r.steps.map((s) => stepBlock(s, r))}
${r.stillApplied ? html`<p class="bad">Still applied on this host: ${r.stillApplied.join(", ")}</p>` : ""}
${r.error && !r.steps.some((s) => s.error || s.undoError) ? errorBlock("run", r.error) : ""}</div>`;
}

function stepClass(s: StepModel): string {
  return s.status.startsWith("failed-") ? "failed" : s.status;
}

function stepBlock(s: StepModel, r: RunModel): Markup {
  const times = [
    s.applyMs !== undefined ? `apply ${duration(s.applyMs) || "0 ms"}` : "",
    s.undoMs !== undefined ? `undo ${duration(s.undoMs) || "0 ms"}` : "",
  ]
    .filter(Boolean)
    .join(" · ");
  const verified = s.status === "undone" ? html` <span class="ok">✓ undo verified</span>` : "";
  const changed = s.changed === false ? html` <span class="mut">(no change)</span>` : "";
  const failed = s.error ? html` <span class="fail">✗ ${s.error.phase ?? "apply"} failed</span>` : "";
  const head = html`<b>${s.name}</b> <span class="kind">${s.kind}</span> <span class="st">${s.status}</span>${failed}${changed}${verified} <span class="mut">${times}</span>`;
  const problem = !!(s.error || s.undoError) || s.status === "drift";
  // an undo run restores what its forward run (linked above it) shows in full: one line per step
  // unless something went wrong, which keeps a 200-host rollback-all report small
  if (r.mode === "undo" && !problem) return html`<div class="step1">${head}</div>`;
  return html`<details class="step s-${stepClass(s)}" ${problem ? "open" : ""}><summary>${head}</summary><div class="sd"><div class="mut">${show(s.title, 300)}</div><h5>params</h5><pre>${pretty(s.params)}</pre><h5>${r.mode === "undo" ? "state: before the run being undone → after it" : "state: before → after"}</h5>${diffTable(s.before, s.after, s.status)}${undoLine(s)}${s.error ? errorBlock(`${s.error.phase ?? "apply"} failed`, s.error) : ""}${s.undoError ? errorBlock(s.status === "drift" ? "drift: undo not attempted" : "undo failed", s.undoError) : ""}</div></details>`;
}

function undoLine(s: StepModel): Markup | string {
  if (s.status === "undone")
    return html`<h5>undo</h5><p class="ok">Restored the before-state; verify observed it again and found it equal. ✓</p>`;
  if (s.status === "undo-failed")
    return html`<h5>undo</h5><p class="bad">Undo failed: the step is still changed (see below).</p>`;
  if (s.status === "drift")
    return html`<h5>undo</h5><p class="bad">Not undone: the state was changed by someone else since the run (drift).</p>`;
  if (s.status === "undoing")
    return html`<h5>undo</h5><p class="bad">Undo was started and not finished (the process died): recover verifies it.</p>`;
  if (s.status === "failed-unchanged")
    return html`<h5>undo</h5><p class="mut">Nothing to undo: check found the state unchanged.</p>`;
  return "";
}

function diffTable(before: Json | undefined, after: Json | undefined, status: string): Markup {
  if (before === undefined) return html`<p class="mut">not observed (${status})</p>`;
  if (after === undefined)
    return html`<pre>${pretty(before)}</pre><p class="mut">after: not recorded (${status === "failed-unchanged" ? "unchanged" : status})</p>`;
  const rows = diffStates(before, after);
  const changed = rows.filter((r) => r.change !== "same");
  const same = rows.length - changed.length;
  if (!changed.length)
    return html`<p class="mut">unchanged (${rows.length} field${rows.length === 1 ? "" : "s"}): <code>${show(before, 300)}</code></p>`;
  return html`<table class="diff"><tr><th>field</th><th>before</th><th>after</th></tr>${changed.map(
    (d) =>
      html`<tr><td class="path mono">${d.path || "(whole state)"}</td><td class="b mono">${d.before === undefined ? "—" : show(d.before)}</td><td class="a mono">${d.after === undefined ? "—" : show(d.after)}</td></tr>`,
  )}</table>${same ? html`<p class="mut">${same} other field${same === 1 ? "" : "s"} unchanged</p>` : ""}`;
}

function errorBlock(label: string, e: ErrorInfo): Markup {
  return html`<div class="err"><div><span class="code">${label}${e.code ? ` · ${e.code}` : ""}</span> ${firstLine(e)}</div>
${e.expected !== undefined ? html`<div><b>expected</b> <code>${show(e.expected, 600)}</code></div>` : ""}
${e.found !== undefined ? html`<div><b>found</b> <code>${show(e.found, 600)}</code></div>` : ""}
${e.hint ? html`<div><b>fix</b> ${show(e.hint, 600)}</div>` : ""}
${e.shortMessage === undefined && e.message.includes("\n") ? html`<pre>${show(e.message, 2000)}</pre>` : ""}
${e.cause && !firstLine(e).includes(e.cause.message.split("\n")[0] ?? "") ? html`<div class="mut">cause: ${show(e.cause.message.split("\n")[0] ?? "", 400)}</div>` : ""}</div>`;
}

function firstLine(e: ErrorInfo): string {
  const text = e.shortMessage ?? e.message.replace(/^\[atomkit\][^:]*:\s*/, "");
  return show(text.split("\n")[0] ?? "", 400);
}

function pretty(v: Json): string {
  const text = JSON.stringify(v, null, 2) ?? "—";
  return text.length > 3000 ? `${text.slice(0, 3000)}… (${text.length - 3000} more characters)` : text;
}

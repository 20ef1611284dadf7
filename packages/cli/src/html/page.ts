import { html, type Markup, raw } from "./markup";

// One self-contained file: inline CSS, no script, and a Content-Security-Policy that forbids every fetch
// (so it opens the same from a CI artifact, a mail attachment or a laptop offline, and even markup that
// escaped the escaping could neither run nor call out).
const CSP =
  "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

const CSS = `
:root{--fg:#1c1e21;--mut:#667;--bg:#fff;--line:#dde;--ok:#1a7f37;--rb:#9a6700;--bad:#cf222e;--info:#0969da;
--apply:#3b82f6;--check:#8b5cf6;--undo:#f59e0b;--verify:#16a34a;--drift:#dc2626;--label:13rem}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;max-width:1400px;padding:1rem 1.5rem}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:1px solid var(--line)}h4{margin:.8rem 0 .3rem;font-size:.95rem}
code,pre,.mono{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.4rem .6rem;border-radius:4px;margin:.2rem 0;max-height:16rem;overflow:auto}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:1rem;color:#fff;font-size:.8rem;font-weight:600;vertical-align:middle;text-transform:uppercase;letter-spacing:.03em}
.o-committed{background:var(--ok)}.o-rolled-back{background:var(--rb)}.o-rollback-failed,.o-unfinished,.o-refused,.o-corrupt{background:var(--bad)}.o-partial{background:#bc4c00}.o-not-run{background:#8c959f}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.6rem 0}dl.meta dt{color:var(--mut)}dl.meta dd{margin:0;overflow-wrap:anywhere}
.summary{font-size:1.02rem;margin:.5rem 0;padding:.5rem .8rem;border-left:4px solid var(--info);background:#f6f8fa}
.summary.bad{border-color:var(--bad)}.summary.rb{border-color:var(--rb)}.summary.ok{border-color:var(--ok)}
.counts span{margin-right:1rem}
.legend span{display:inline-flex;align-items:center;margin-right:1rem;color:var(--mut)}.legend i{display:inline-block;width:.9rem;height:.6rem;margin-right:.3rem;border-radius:2px}
.tl{position:relative;border:1px solid var(--line);border-radius:4px;padding:.2rem 0 1.3rem;overflow:hidden}
.axis,.row{display:flex;align-items:center}.axis{height:1.3rem;color:var(--mut);font-size:11px;border-bottom:1px solid var(--line)}
.rh{width:var(--label);flex:none;padding:0 .5rem;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-size:12px;color:inherit;text-decoration:none}
.lane{position:relative;flex:1;height:14px}.row{height:16px}.row:nth-child(even){background:#fafbfc}
.ticks{position:relative;flex:1;height:100%}.ticks span{position:absolute;top:.15rem;transform:translateX(-50%)}
.seg{position:absolute;top:2px;height:10px;min-width:2px;border-right:1px solid #fff}
.p-apply{background:var(--apply)}.p-check{background:var(--check)}.p-undo{background:var(--undo)}.p-verify{background:var(--verify)}
.p-drift{background:repeating-linear-gradient(45deg,var(--drift),var(--drift) 2px,#fff 2px,#fff 4px);min-width:6px}
.seg.failed{outline:2px solid var(--bad);outline-offset:-1px}.seg.interrupted{opacity:.45}
.batch{font-size:11px;color:var(--mut);padding:.2rem .5rem;border-top:1px dashed var(--line);background:#fff}
.over{position:absolute;top:0;bottom:0;left:var(--label);right:0;pointer-events:none}
.rbband{position:absolute;top:0;bottom:0;background:rgba(245,158,11,.12);border-left:1px dashed var(--rb);border-right:1px dashed var(--rb)}
.rbband b{position:absolute;bottom:.1rem;left:.2rem;font-size:11px;color:var(--rb);white-space:nowrap}
.fline{position:absolute;top:0;bottom:0;border-left:2px solid var(--bad)}.fline b{position:absolute;top:1.4rem;left:.25rem;font-size:11px;color:var(--bad);white-space:nowrap;background:#fff}
details{margin:.2rem 0}summary{cursor:pointer}
details.group>summary{font-weight:600;font-size:1rem;margin:.6rem 0 .2rem}
details.host{border:1px solid var(--line);border-radius:4px;padding:.2rem .6rem;margin:.3rem 0 .3rem .6rem}
details.host>summary{font-weight:600}details.host>summary .why{font-weight:400;color:var(--bad)}
details.step,.step1{border-left:3px solid var(--line);padding-left:.6rem;margin:.25rem 0}.step1{border-color:var(--verify);padding-left:1.6rem}
details.step.s-failed{border-color:var(--bad)}details.step.s-undone{border-color:var(--verify)}details.step.s-drift,details.step.s-undo-failed{border-color:var(--bad)}details.step.s-applied{border-color:var(--apply)}
.kind{color:var(--mut)}.fail{color:#fff;background:var(--bad);font-size:12px;padding:0 .35rem;border-radius:3px;margin-left:.3rem}.st{font-size:12px;padding:0 .35rem;border:1px solid var(--line);border-radius:3px;margin-left:.3rem}
.ok{color:var(--ok)}.bad{color:var(--bad)}.mut{color:var(--mut)}
.sd{margin:.3rem 0 .6rem}.sd h5{margin:.5rem 0 .15rem;font-size:12px;color:var(--mut);text-transform:uppercase;letter-spacing:.04em}
table{border-collapse:collapse;width:100%}table.diff{table-layout:fixed}table.diff th:first-child{width:11rem}td,th{border:1px solid var(--line);padding:.15rem .4rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}th{background:#f6f8fa;font-weight:600;font-size:12px}
.diff td.b{background:#ffebe9}.diff td.a{background:#dafbe1}.diff td.path{white-space:nowrap}
.err{border:1px solid #ffcecb;background:#fff5f5;border-radius:4px;padding:.4rem .6rem;margin:.3rem 0}.err .code{font-weight:600;color:var(--bad)}
.hist td.when{white-space:nowrap}.hist tr.live td{background:#f0fff4}
.dots{position:relative;flex:1;height:14px}.dot{position:absolute;top:2px;width:10px;height:10px;border-radius:50%;transform:translateX(-50%)}
footer{margin-top:2rem;color:var(--mut);font-size:12px}
`;

/** The page around a report's body. */
export function page(title: string, body: Markup): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<style>${raw(CSS)}</style>
</head><body>
${body}
</body></html>
`.text;
}

// The report as one self-contained HTML file: inline style and script, the data as JSON in the
// page, no network. Everything the treemap shows is also in static tables, so the page reads with
// JavaScript off; every colour has a pattern and a text tag, so it reads without colour.
// The same model gives the same bytes: nothing here reads the clock or the machine.
import { browserScript } from './client.js';
import type { Category } from './categories.js';
import type { Contribution, ReportModel } from './model.js';
import { KIND, type SizedPath } from './tree.js';
import { humanBytes } from '../util/size.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** JSON inside <script>: no `</script>` or `<!--` can end it early. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}


const num = (n: number) => n.toLocaleString('en-US');

// Colour-blind-friendly hues (Okabe–Ito, then greys), each with its own pattern.
const COLOURS = ['#56b4e9', '#e69f00', '#009e73', '#cc79a7', '#d55e00', '#f0e442', '#0072b2', '#bbbbbb', '#888888'];
const PATTERNS = [
  'none',
  'repeating-linear-gradient(45deg, rgba(0,0,0,.18) 0 2px, transparent 2px 8px)',
  'repeating-linear-gradient(-45deg, rgba(0,0,0,.18) 0 2px, transparent 2px 8px)',
  'radial-gradient(rgba(0,0,0,.25) 1.5px, transparent 1.6px) 0 0 / 8px 8px',
  'repeating-linear-gradient(0deg, rgba(0,0,0,.18) 0 2px, transparent 2px 8px)',
  'repeating-linear-gradient(90deg, rgba(0,0,0,.18) 0 2px, transparent 2px 8px)',
  'repeating-linear-gradient(45deg, rgba(255,255,255,.35) 0 3px, transparent 3px 6px)',
  'repeating-linear-gradient(135deg, rgba(0,0,0,.12) 0 1px, transparent 1px 4px)',
  'radial-gradient(rgba(255,255,255,.5) 1.5px, transparent 1.6px) 0 0 / 6px 6px',
];

function categoryStyle(cats: readonly Category[]): string {
  return cats.map((_, i) => `.cat-${i}{background:${PATTERNS[i % PATTERNS.length]},${COLOURS[i % COLOURS.length]}}`).join('\n');
}

const STYLE = `
:root{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111;background:#fff}
body{margin:0 auto;max-width:1200px;padding:1em}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
nav.sections a{margin-right:1em}
table{border-collapse:collapse;width:100%;margin:.4em 0}
th,td{text-align:left;padding:2px 6px;border-bottom:1px solid #e4e4e4;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.p{word-break:break-all}
th button{font:inherit;font-weight:bold;background:none;border:0;padding:0;cursor:pointer;text-decoration:underline dotted}
th[aria-sort=descending] button::after{content:" ▼"}th[aria-sort=ascending] button::after{content:" ▲"}
#breadcrumb ol{list-style:none;padding:0;margin:.3em 0;display:flex;flex-wrap:wrap}
#breadcrumb li+li::before{content:"›";padding:0 .4em;color:#666}
#breadcrumb button{font:inherit;background:none;border:0;padding:0;color:#0645ad;text-decoration:underline;cursor:pointer}
#treemap{position:relative;height:480px;border:1px solid #999;overflow:hidden;background:#f4f4f4}
.cell{position:absolute;box-sizing:border-box;border:1px solid #fff;overflow:hidden;font-size:12px;cursor:default;color:#000}
.cell.open{cursor:zoom-in}
.cell:focus{outline:3px solid #000;outline-offset:-3px;z-index:2}
.cell .label{display:block;padding:1px 3px;background:rgba(255,255,255,.8);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.cell .tag{display:inline-block;margin:2px 3px;padding:0 3px;background:#fff;border:1px solid #000;font-size:10px;font-weight:bold}
.empty{padding:1em}
.sub{position:absolute;box-sizing:border-box;border:1px solid rgba(255,255,255,.9);overflow:hidden;font-size:10px;white-space:nowrap;padding:0 2px;cursor:zoom-in}
#legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3em 1.2em}
.swatch{display:inline-block;width:2.2em;height:1.1em;border:1px solid #000;vertical-align:middle;margin-right:.3em}
.tagtext{font-size:11px;font-weight:bold;border:1px solid #000;padding:0 3px}
#results{max-height:12em;overflow:auto;margin:.2em 0;padding-left:1.2em}
#results button{font:inherit;background:none;border:0;padding:0;color:#0645ad;text-align:left;cursor:pointer}
.d1{padding-left:1.2em}.d2{padding-left:2.4em}.d3{padding-left:3.6em}.d4{padding-left:4.8em}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em}dl.facts dt{font-weight:bold}dl.facts dd{margin:0;word-break:break-all}
#map-controls{display:flex;flex-wrap:wrap;gap:.5em 2em;align-items:baseline}
`;

function categoryCell(cats: readonly Category[], i: number): string {
  const c = cats[i]!;
  return `<span class="swatch cat-${i}" aria-hidden="true"></span><span class="tagtext">${escapeHtml(c.tag)}</span> ${escapeHtml(c.label)}`;
}

/** The static tree table: the top levels of the tree, what the treemap draws, readable without script. */
function treeTable(m: ReportModel, maxDepth = 4, maxRows = 400): string {
  const t = m.tree;
  const depth: number[] = [0];
  const rows: string[] = [];
  for (let i = 0; i < t.name.length && rows.length < maxRows; i++) {
    if (i > 0) depth[i] = depth[t.parent[i]!]! + 1;
    if (depth[i]! > maxDepth) continue;
    const kind = ['image', 'repository', 'part', 'directory', 'file', 'smaller entries'][t.kind[i]!];
    const share = t.bytes[0]! > 0 ? ((100 * t.bytes[i]!) / t.bytes[0]!).toFixed(1) : '0.0';
    const ab = t.a && t.b ? `<td class="n" data-value="${t.a[i]}">${num(t.a[i]!)}</td><td class="n" data-value="${t.b[i]}">${num(t.b[i]!)}</td>` : '';
    rows.push(
      `<tr data-node="${i}" data-kind="${kind}"><td class="p d${Math.min(depth[i]!, 4)}">${escapeHtml(t.name[i]!)}${t.kind[i] === KIND.part ? ' <em>(part)</em>' : ''}</td>` +
        `<td>${categoryCell(m.categories, t.cat[i]!)}</td><td class="n" data-value="${t.entries[i]}">${num(t.entries[i]!)}</td>` +
        `<td class="n" data-value="${t.bytes[i]}">${num(t.bytes[i]!)}</td>${ab}<td class="n" data-value="${share}">${share} %</td></tr>`,
    );
  }
  const abHead = t.a ? `<th class="n">bytes in ${escapeHtml(m.compare!.a)}</th><th class="n">bytes in ${escapeHtml(m.compare!.b)}</th>` : '';
  return (
    `<table id="tree-table"><caption>The tree, ${maxDepth} levels down${m.threshold >= 0 ? `; entries of ${num(m.threshold)} bytes or fewer are summed per directory` : ''}</caption>` +
    `<thead><tr><th>name</th><th>${m.kind === 'compare' ? 'change (most bytes)' : 'reason (most bytes)'}</th><th class="n">entries</th><th class="n">bytes</th>${abHead}<th class="n">share</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
  );
}

function sizedTable(id: string, caption: string, rows: readonly SizedPath[], m: ReportModel, withEntries: boolean): string {
  const parts = rows.some((r) => r.part !== '');
  const ab = m.kind === 'compare';
  const head = `<tr><th>path</th>${parts ? '<th>part</th>' : ''}<th>${ab ? 'change' : 'reason'}</th>${withEntries ? '<th class="n">entries</th>' : ''}${ab ? '<th class="n">before</th><th class="n">after</th>' : '<th class="n">bytes</th>'}</tr>`;
  const body = rows
    .map(
      (r) =>
        `<tr><td class="p">${escapeHtml(r.path)}</td>${parts ? `<td>${escapeHtml(r.part)}</td>` : ''}<td>${categoryCell(m.categories, r.cat)}</td>` +
        (withEntries ? `<td class="n" data-value="${r.entries}">${num(r.entries)}</td>` : '') +
        (ab
          ? `<td class="n" data-value="${r.a}">${num(r.a ?? 0)}</td><td class="n" data-value="${r.b}">${num(r.b ?? 0)}</td>`
          : `<td class="n" data-value="${r.bytes}">${num(r.bytes)} <small>(${humanBytes(r.bytes)})</small></td>`) +
        '</tr>',
    )
    .join('');
  return rows.length === 0 ? `<p>${escapeHtml(caption)}: none.</p>` : `<table id="${id}" class="sortable"><caption>${escapeHtml(caption)}</caption><thead>${head}</thead><tbody>${body}</tbody></table>`;
}

function contributionTable(id: string, caption: string, rows: readonly Contribution[], m: ReportModel, showCat: boolean): string {
  const body = rows
    .map(
      (r) =>
        `<tr><td>${showCat ? categoryCell(m.categories, r.cat) : escapeHtml(r.label)}</td><td class="n" data-value="${r.entries}">${num(r.entries)}</td>` +
        `<td class="n" data-value="${r.bytes}">${num(r.bytes)} <small>(${humanBytes(r.bytes)})</small></td></tr>`,
    )
    .join('');
  return `<table id="${id}" class="sortable"><caption>${escapeHtml(caption)}</caption><thead><tr><th>${showCat ? 'kind' : 'part'}</th><th class="n">entries</th><th class="n">bytes</th></tr></thead><tbody>${body}</tbody></table>`;
}

function facts(pairs: Array<[string, string | number | null | undefined]>): string {
  const shown = pairs.filter(([, v]) => v !== null && v !== undefined && v !== '');
  return `<dl class="facts">${shown.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(typeof v === 'number' ? num(v) : v!)}</dd>`).join('')}</dl>`;
}

function statsLine(o: Record<string, unknown> | null): string | null {
  if (!o) return null;
  return Object.entries(o)
    .map(([k, v]) => `${k} ${typeof v === 'number' ? num(v) : JSON.stringify(v)}`)
    .join(', ');
}

function contributionsSection(m: ReportModel): string {
  if (m.kind === 'compare') return `<section id="contributions"><h2>What changed</h2>${contributionTable('by-change', 'Entries and bytes per change (bytes of the second plan; of the first for removals)', m.byCategory, m, true)}</section>`;
  return (
    `<section id="contributions"><h2>What each reason and part added</h2>` +
    contributionTable('by-reason', 'Per kind of reason (rule packs and closures among them)', m.byCategory, m, true) +
    (m.byPart.length > 1 ? contributionTable('by-part', 'Per release part (from each entry’s reason)', m.byPart, m, false) : '') +
    facts([
      ['symlink closure', statsLine(m.closure)],
      ['ELF closure', statsLine(m.elf)],
    ]) +
    '</section>'
  );
}

function duplicatesSection(m: ReportModel): string {
  const d = m.duplicates;
  if (!d) return '';
  const dedup = m.build && m.build.format === 'squashfs' ? `<p>The SquashFS writer stored ${num(m.build.dedupFiles)} duplicate files once, saving ${num(m.build.dedupBytes)} bytes (${humanBytes(m.build.dedupBytes)}).</p>` : '';
  const links = d.hardlinkRows.map((r) => `<tr><td class="p">${escapeHtml(r.path)}</td><td class="p">${escapeHtml(r.target)}</td></tr>`).join('');
  const same = d.sameNameSize.map((r) => `<tr><td class="p">${escapeHtml(r.name)}</td><td class="n" data-value="${r.size}">${num(r.size)}</td><td class="n" data-value="${r.count}">${num(r.count)}</td><td class="p">${r.paths.map(escapeHtml).join('<br>')}</td></tr>`).join('');
  return (
    `<section id="duplicates"><h2>Duplicates</h2>${dedup}` +
    `<p>${num(d.hardlinks)} hard links (one inode, several names: stored once in every format).</p>` +
    (links ? `<table id="hardlinks" class="sortable"><thead><tr><th>path</th><th>same inode as</th></tr></thead><tbody>${links}</tbody></table>` : '') +
    (same
      ? `<table id="same-name-size" class="sortable"><caption>Files of 4 KiB or more sharing a name and size (likely copies; not compared byte for byte)</caption><thead><tr><th>name</th><th class="n">bytes</th><th class="n">copies</th><th>where (first five)</th></tr></thead><tbody>${same}</tbody></table>`
      : '<p>No files of 4 KiB or more share a name and size.</p>') +
    '</section>'
  );
}

function warningsSection(m: ReportModel): string {
  if (m.kind === 'compare') return '';
  const rows = m.warnings.map((w) => `<tr><td>${escapeHtml(w.kind)}</td><td class="p">${escapeHtml(w.message)}</td></tr>`).join('');
  return `<section id="warnings"><h2>Warnings (${num(m.warnings.length)})</h2>${rows ? `<table class="sortable"><thead><tr><th>kind</th><th>message</th></tr></thead><tbody>${rows}</tbody></table>` : '<p>None.</p>'}</section>`;
}

function imageSection(m: ReportModel): string {
  const b = m.build;
  if (!b) return '';
  const ratio = b.bytes !== null && b.bytes > 0 && b.contentBytes > 0 ? (b.contentBytes / b.bytes).toFixed(2) : null;
  const layers = b.layers
    .map((l) => {
      const ratio = l.contentBytes !== null && l.size > 0 ? (l.contentBytes / l.size).toFixed(2) : '';
      return `<tr><td>${escapeHtml(l.label)}</td><td>${l.kept ? 'base, kept' : 'new'}</td><td class="n" data-value="${l.size}">${num(l.size)} <small>(${humanBytes(l.size)})</small></td><td class="n" data-value="${ratio}">${ratio}</td></tr>`;
    })
    .join('');
  return (
    `<section id="image"><h2>The image</h2>` +
    facts([
      ['output', b.output],
      ['format', b.format],
      ['compressor', b.compression],
      ['image bytes', b.bytes === null ? null : `${num(b.bytes)} (${humanBytes(b.bytes)})`],
      ['content bytes', `${num(b.contentBytes)} (${humanBytes(b.contentBytes)})`],
      ['compression ratio (content / image)', ratio],
    ]) +
    (layers ? `<table id="layers" class="sortable"><caption>Layers (compressed size; one per repository or release part)</caption><thead><tr><th>layer</th><th>kind</th><th class="n">bytes</th><th class="n">file content / layer</th></tr></thead><tbody>${layers}</tbody></table>` : '') +
    '</section>'
  );
}

function provenanceSection(m: ReportModel): string {
  if (m.kind === 'compare') {
    const c = m.compare!;
    return `<section id="provenance"><h2>Compared</h2>${facts([
      ['first', `${c.a}: ${num(c.aEntries)} entries, ${num(c.aBytes)} bytes`],
      ['second', `${c.b}: ${num(c.bEntries)} entries, ${num(c.bBytes)} bytes`],
      ['difference', `${c.bBytes - c.aBytes >= 0 ? '+' : '−'}${num(Math.abs(c.bBytes - c.aBytes))} bytes`],
    ])}</section>`;
  }
  const p = m.provenance;
  if (!p) return '';
  return `<section id="provenance"><h2>Provenance</h2>${facts([
    ['tool', p.tool],
    ['created', p.created],
    ['base', p.base],
    ['source', p.source],
    ['releases', p.releases.join('; ')],
    ['revisions', p.revisions.join('; ')],
    ['command', p.command],
  ])}</section>`;
}

function compareTables(m: ReportModel): string {
  const c = m.compare;
  if (!c) return '';
  return (
    `<section id="changes"><h2>Largest changes</h2>` +
    sizedTable('added-files', 'Largest added files', c.added, m, false) +
    sizedTable('removed-files', 'Largest removed files', c.removed, m, false) +
    sizedTable('grown-files', 'Files that grew most', c.grown, m, false) +
    '</section>'
  );
}

/** The whole page. */
export function renderHtml(m: ReportModel): string {
  const summary =
    m.kind === 'compare'
      ? `${num(m.compare!.aEntries)} → ${num(m.compare!.bEntries)} entries, ${num(m.compare!.aBytes)} → ${num(m.compare!.bBytes)} bytes of file content`
      : `${num(m.totals.entries)} entries, ${num(m.totals.files)} files, ${num(m.totals.bytes)} bytes (${humanBytes(m.totals.bytes)}) of file content in ${num(m.repositories.length)} repositories`;
  const legend = m.categories.map((_, i) => `<li>${categoryCell(m.categories, i)}</li>`).join('');
  const data = { categories: m.categories, tree: m.tree };
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="shrinkwrap">
<title>shrinkwrap report: ${escapeHtml(m.title)}</title>
<style>${STYLE}
${categoryStyle(m.categories)}
</style>
</head>
<body>
<header>
<h1>shrinkwrap report: ${escapeHtml(m.title)}</h1>
<p id="summary" data-entries="${m.totals.entries}" data-bytes="${m.totals.bytes}">${escapeHtml(summary)}</p>
<nav class="sections" aria-label="Sections"><a href="#map-section">map</a><a href="#largest">largest</a>${m.compare ? '<a href="#changes">changes</a>' : ''}<a href="#contributions">${m.kind === 'compare' ? 'changes per kind' : 'reasons and parts'}</a>${m.duplicates ? '<a href="#duplicates">duplicates</a>' : ''}${m.kind === 'plan' ? '<a href="#warnings">warnings</a>' : ''}${m.build ? '<a href="#image">image</a>' : ''}<a href="#provenance">provenance</a></nav>
</header>
<main>
<section id="map-section">
<h2>${m.kind === 'compare' ? 'Bytes by place, coloured by change' : 'Bytes by place, coloured by reason'}</h2>
<div id="map-controls" hidden>
<nav id="breadcrumb" aria-label="Where you are"></nav>
<output id="totals" aria-live="polite"></output>
<label>Search names <input id="search" type="search" autocomplete="off"></label>
</div>
<ul id="results" aria-label="Search results"></ul>
<p id="detail" aria-live="polite"></p>
<div id="treemap" role="group" aria-label="Treemap: Enter opens a rectangle, Escape goes up, arrows move" hidden></div>
<noscript><p>The zoomable treemap needs JavaScript; the table below has the same numbers.</p></noscript>
<ul id="legend" aria-label="Legend">${legend}</ul>
${treeTable(m)}
</section>
<section id="largest">
<h2>Largest files and directories</h2>
${sizedTable('largest-files', `The ${m.largestFiles.length} largest files`, m.largestFiles, m, false)}
${sizedTable('largest-dirs', `The ${m.largestDirs.length} largest directories (a directory in two parts is a row per part)`, m.largestDirs, m, true)}
</section>
${compareTables(m)}
${contributionsSection(m)}
${duplicatesSection(m)}
${warningsSection(m)}
${imageSection(m)}
${provenanceSection(m)}
</main>
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${browserScript()}</script>
</body>
</html>
`;
}

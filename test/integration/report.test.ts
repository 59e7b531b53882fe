// Issue 23: the HTML report, end to end. The example release's report is loaded in a real
// browser (Debian's headless chromium, driven over the DevTools protocol): a click into a
// repository, the breadcrumb and totals read back and compared with `plan --json`'s; the keyboard
// path (focus, Enter, Escape); the page with JavaScript off. Then build --report (the image's bytes
// unchanged), report IMAGE of each format, report A B, and bad input.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExample } from '../../fixtures/example.js';
import { Browser, CHROMIUM } from '../helpers/chromium.js';
import { expectOneLineError, shrinkwrap } from '../helpers/cli.js';
import { canRun } from '../helpers/env.js';
import { tmpDir } from '../helpers/tree.js';

const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1600000000', TZ: 'UTC' };
const RELEASE = ['--release', 'AnalysisBase,21.2.75'];
let cvmfs: string;
let base: string;
let work: string;

interface PlanDoc {
  entries: Array<{ path: string; type: string; size: number }>;
  summary: { entries: number; bytes: number; repositories: Record<string, { entries: number; bytes: number }> };
}

function plan(args: string[]): PlanDoc {
  const r = shrinkwrap(['plan', '--cvmfs-root', cvmfs, ...args, '--json', '-q'], { env: ENV });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

/** The data a page embeds. */
function pageData(file: string): { tree: { name: string[]; parent: number[]; entries: number[]; bytes: number[] } } {
  const html = fs.readFileSync(file, 'utf8');
  const m = /<script type="application\/json" id="report-data">([^<]*)<\/script>/.exec(html);
  return JSON.parse(m![1]!);
}

function repoNode(file: string, repo: string): { entries: number; bytes: number } {
  const { tree } = pageData(file);
  const i = tree.name.findIndex((n, k) => tree.parent[k] === 0 && n === repo);
  return { entries: tree.entries[i]!, bytes: tree.bytes[i]! };
}

let planDoc: PlanDoc;
let page: string;

beforeAll(async () => {
  ({ cvmfs, base } = await ensureExample());
  work = tmpDir('sw-report-');
  planDoc = plan(RELEASE);
  page = path.join(work, 'example.html');
  const r = shrinkwrap(['plan', '--cvmfs-root', cvmfs, ...RELEASE, '--html', page, '-q'], { env: ENV });
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

describe('plan --html', () => {
  it("embeds the plan's totals, per repository too", () => {
    const { tree } = pageData(page);
    expect(tree.entries[0]).toBe(planDoc.summary.entries);
    expect(tree.bytes[0]).toBe(planDoc.summary.bytes);
    for (const [repo, s] of Object.entries(planDoc.summary.repositories)) expect(repoNode(page, repo)).toEqual(s);
  });

  it('is the same bytes for the same plan, and the same as `report` of the plan document', () => {
    const again = path.join(work, 'again.html');
    expect(shrinkwrap(['plan', '--cvmfs-root', cvmfs, ...RELEASE, '--html', again, '-q'], { env: ENV }).code).toBe(0);
    expect(fs.readFileSync(again)).toEqual(fs.readFileSync(page));
    const doc = path.join(work, 'plan.json');
    fs.writeFileSync(doc, shrinkwrap(['plan', '--cvmfs-root', cvmfs, ...RELEASE, '--json', '-q'], { env: ENV }).stdout);
    const fromDoc = path.join(work, 'from-doc.html');
    expect(shrinkwrap(['report', doc, '-o', fromDoc, '-q']).code).toBe(0);
    expect(pageData(fromDoc)).toEqual(pageData(page));
  });

  it('is self-contained: no URL it would fetch', () => {
    const html = fs.readFileSync(page, 'utf8');
    expect(html).not.toMatch(/\b(?:src|href)="(?!#)/);
    expect(html).not.toMatch(/@import|url\(/);
  });
});

describe.skipIf(!canRun(fs.existsSync(CHROMIUM), 'report browser tests', 'no /usr/bin/chromium (apt-get install chromium)'))('in a real browser (headless chromium)', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await Browser.start();
  }, 60_000);
  afterAll(async () => {
    await browser?.stop();
  });

  const crumbs = () => browser.eval<string[]>(`[...document.querySelectorAll('#breadcrumb li')].map((li) => li.textContent)`);
  const totals = () => browser.eval<{ entries: number; bytes: number }>(`(() => { const t = document.getElementById('totals'); return { entries: Number(t.dataset.entries), bytes: Number(t.dataset.bytes) }; })()`);

  it("clicking into a repository shows its breadcrumb and totals, equal to plan --json's", async () => {
    await browser.open(`file://${page}`, `document.documentElement.dataset.ready === '1'`);
    expect(await crumbs()).toEqual(['/cvmfs']);
    expect(await totals()).toEqual({ entries: planDoc.summary.entries, bytes: planDoc.summary.bytes });
    await browser.click('#treemap .cell[data-name="atlas.cern.ch"] .label');
    expect(await crumbs()).toEqual(['/cvmfs', 'atlas.cern.ch']);
    expect(await totals()).toEqual(planDoc.summary.repositories['atlas.cern.ch']);
    // The release's parts are what it shows next.
    const cells = await browser.eval<string[]>(`[...document.querySelectorAll('#treemap .cell')].map((c) => c.dataset.name)`);
    expect(cells).toContain('release AnalysisBase 21.2.75');
    // Back up through the breadcrumb.
    await browser.click('#breadcrumb button');
    expect(await crumbs()).toEqual(['/cvmfs']);
  });

  it('works from the keyboard: focus and Enter open, Escape goes back up', async () => {
    await browser.open(`file://${page}`, `document.documentElement.dataset.ready === '1'`);
    await browser.eval(`document.querySelector('#treemap .cell[data-name="atlas.cern.ch"]').focus()`);
    await browser.key('Enter');
    expect(await crumbs()).toEqual(['/cvmfs', 'atlas.cern.ch']);
    // The focus lands in what was opened, so Enter goes on down.
    expect(await browser.eval<string>(`document.activeElement.dataset.name`)).toBe('release AnalysisBase 21.2.75');
    await browser.key('Enter');
    expect(await crumbs()).toEqual(['/cvmfs', 'atlas.cern.ch', 'release AnalysisBase 21.2.75']);
    await browser.key('Escape');
    await browser.key('Escape');
    expect(await crumbs()).toEqual(['/cvmfs']);
    expect(await browser.eval<string>(`document.activeElement.dataset.name`)).toBe('atlas.cern.ch');
  });

  it('search finds a file and opens the directory it is in', async () => {
    await browser.open(`file://${page}`, `document.documentElement.dataset.ready === '1'`);
    await browser.eval(`(() => { const s = document.getElementById('search'); s.value = 'libxAODRootAccess'; s.dispatchEvent(new Event('input')); })()`);
    await browser.click('#results button');
    const trail = await crumbs();
    expect(trail.slice(0, 3)).toEqual(['/cvmfs', 'atlas.cern.ch', 'release AnalysisBase 21.2.75']);
    expect(trail[trail.length - 1]).toBe('lib');
    expect(await browser.eval<string>(`document.activeElement.dataset.name`)).toMatch(/^libxAODRootAccess/);
  });

  it('sorts a table by a column', async () => {
    await browser.open(`file://${page}`, `document.documentElement.dataset.ready === '1'`);
    const column = `[...document.querySelectorAll('#largest-files tbody tr')].map((r) => Number(r.cells[r.cells.length - 1].dataset.value))`;
    const before = await browser.eval<number[]>(column);
    expect(before).toEqual([...before].sort((a, b) => b - a));
    await browser.click('#largest-files thead th:last-child button');
    await browser.click('#largest-files thead th:last-child button');
    expect(await browser.eval<number[]>(column)).toEqual([...before].sort((a, b) => a - b));
  });
});

describe.skipIf(!fs.existsSync(CHROMIUM))('with JavaScript off', () => {
  it('is the static tables, with the same totals', async () => {
    const browser = await Browser.start(['--blink-settings=scriptEnabled=false']);
    try {
      await browser.open(`file://${page}`);
      expect(await browser.eval<boolean>(`document.documentElement.dataset.ready === undefined && document.getElementById('treemap').hidden`)).toBe(true);
      const row = await browser.eval<string[]>(`[...[...document.querySelectorAll('#tree-table tr[data-kind=repository]')].find((r) => r.cells[0].textContent === 'atlas.cern.ch').cells].map((c) => c.dataset.value ?? c.textContent)`);
      const s = planDoc.summary.repositories['atlas.cern.ch']!;
      expect(row.slice(2, 4)).toEqual([String(s.entries), String(s.bytes)]);
      expect(await browser.eval<number>(`document.querySelectorAll('#largest-files tbody tr').length`)).toBeGreaterThan(10);
    } finally {
      await browser.stop();
    }
  }, 60_000);
});

describe('build --report and report IMAGE', () => {
  it('writes the report beside a SquashFS build and leaves the image as it was', () => {
    const withReport = path.join(work, 'a.sqfs');
    const without = path.join(work, 'b.sqfs');
    const html = path.join(work, 'build.html');
    const r = shrinkwrap(['build', '--cvmfs-root', cvmfs, ...RELEASE, '--base', base, '-o', withReport, '--report', html, '-q'], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    expect(shrinkwrap(['build', '--cvmfs-root', cvmfs, ...RELEASE, '--base', base, '-o', without, '-q'], { env: ENV }).code).toBe(0);
    expect(fs.readFileSync(withReport)).toEqual(fs.readFileSync(without));
    const text = fs.readFileSync(html, 'utf8');
    expect(text).toContain(`<dt>image bytes</dt><dd>${fs.statSync(withReport).size.toLocaleString('en-US')} (`);
    expect(text).toMatch(/<dt>compression ratio \(content \/ image\)<\/dt><dd>\d+\.\d\d<\/dd>/);
    expect(pageData(html).tree.entries[0]).toBe(planDoc.summary.entries);
    // The image's own plan gives the same tree.
    const fromImage = path.join(work, 'image.html');
    expect(shrinkwrap(['report', withReport, '-o', fromImage, '-q']).code).toBe(0);
    expect(pageData(fromImage)).toEqual(pageData(html));
    expect(fs.readFileSync(fromImage, 'utf8')).toContain('<dt>created</dt><dd>2020-09-13T12:26:40Z</dd>');
  });

  it.each(['oci', 'docker-archive', 'dir'])('reads the plan of a %s image', (format) => {
    const out = path.join(work, `img-${format}${format === 'dir' ? '/' : format === 'docker-archive' ? '.tar' : ''}`);
    const built = path.join(work, `built-${format}.html`);
    const r = shrinkwrap(['build', '--cvmfs-root', cvmfs, ...RELEASE, '--base', base, '--format', format, '-o', out, '-q', '--no-checksum', '--report', built], { env: ENV });
    expect(r.code, r.stderr).toBe(0);
    if (format !== 'dir') {
      // Each new layer's size, and for a repository's layer its content over its size.
      const row = new RegExp(`<tr><td>repository atlas\\.cern\\.ch</td><td>new</td><td class="n" data-value="(\\d+)">[^]*?<td class="n" data-value="([\\d.]+)">`).exec(fs.readFileSync(built, 'utf8'));
      expect(row, 'layer row').not.toBeNull();
      expect(Number(row![2])).toBeCloseTo(planDoc.summary.repositories['atlas.cern.ch']!.bytes / Number(row![1]), 2);
    }
    const html = path.join(work, `${format}.html`);
    const rep = shrinkwrap(['report', out, '-o', html, '-q']);
    expect(rep.code, rep.stderr).toBe(0);
    expect(pageData(html).tree.bytes[0]).toBe(planDoc.summary.bytes);
  });
});

describe('report A B', () => {
  it('shows what changed between two releases, totals of each side included', () => {
    const older = plan(['--release', 'AnalysisBase,21.2.74']);
    const a = path.join(work, '74.json');
    const b = path.join(work, '75.json');
    fs.writeFileSync(a, JSON.stringify(older));
    fs.writeFileSync(b, JSON.stringify(planDoc));
    const html = path.join(work, 'diff.html');
    const r = shrinkwrap(['report', a, b, '-o', html, '-q']);
    expect(r.code, r.stderr).toBe(0);
    const { tree } = pageData(html) as unknown as { tree: { a: number[]; b: number[]; name: string[]; cat: number[]; kind: number[] } };
    expect(tree.a[0]).toBe(older.summary.bytes);
    expect(tree.b[0]).toBe(planDoc.summary.bytes);
    const paths = (d: PlanDoc) => new Set(d.entries.map((e) => e.path));
    const onlyNew = [...paths(planDoc)].filter((p) => !paths(older).has(p));
    expect(onlyNew.length).toBeGreaterThan(0);
    const text = fs.readFileSync(html, 'utf8');
    // The largest file only in the second is in the "added" table.
    const biggestNew = planDoc.entries.filter((e) => e.type === 'file' && !paths(older).has(e.path)).sort((x, y) => y.size - x.size)[0]!;
    expect(text).toMatch(new RegExp(`id="added-files"[^]*${biggestNew.path.replace(/[.+]/g, '\\$&')}`));
  });
});

describe('bad input', () => {
  it('names the file in one line, exit 2', () => {
    expectOneLineError(shrinkwrap(['report', path.join(work, 'nope.sqfs'), '-o', path.join(work, 'x.html')]), 2, 'nope.sqfs');
    const junk = path.join(work, 'junk.bin');
    fs.writeFileSync(junk, Buffer.alloc(4096, 7));
    expectOneLineError(shrinkwrap(['report', junk, '-o', path.join(work, 'x.html')]), 2, `${junk}: expected a plan`);
    const notJson = path.join(work, 'bad.json');
    fs.writeFileSync(notJson, '{"entries":[\n{"path":\n');
    expectOneLineError(shrinkwrap(['report', notJson, '-o', path.join(work, 'x.html')]), 2, `${notJson}:2: not JSON`);
    const plainDir = tmpDir('sw-report-plain-');
    expectOneLineError(shrinkwrap(['report', plainDir, '-o', path.join(work, 'x.html')]), 2, `${plainDir}: an image directory without /.shrinkwrap/plan.json`);
    fs.rmSync(plainDir, { recursive: true });
    expect(fs.existsSync(path.join(work, 'x.html'))).toBe(false);
  });

  it('an image without /.shrinkwrap/plan.json (a /cvmfs-only SquashFS) is named as such', () => {
    const img = path.join(work, 'payload-only.sqfs');
    expect(shrinkwrap(['build', '--cvmfs-root', cvmfs, ...RELEASE, '-o', img, '-q', '--no-checksum'], { env: ENV }).code).toBe(0);
    expectOneLineError(shrinkwrap(['report', img, '-o', path.join(work, 'x.html')]), 2, `${img}: a SquashFS image without /.shrinkwrap/plan.json`);
  });

  it('a report path in a missing directory fails before the build starts', () => {
    const out = path.join(work, 'never.sqfs');
    expectOneLineError(shrinkwrap(['build', '--cvmfs-root', cvmfs, ...RELEASE, '-o', out, '--report', path.join(work, 'no/such/r.html')]), 2, 'no/such');
    expect(fs.existsSync(out)).toBe(false);
  });
});

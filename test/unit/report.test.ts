// The report's pieces without a browser: the squarified layout, the tree and its aggregation,
// reason categories, the comparison, and the page's escaping and determinism.
import { describe, expect, it } from 'vitest';
import { CHANGE, REASON_CATEGORIES, reasonCategory, reasonPart } from '../../src/report/categories.js';
import { compareReport } from '../../src/report/diff.js';
import { renderHtml } from '../../src/report/html.js';
import { type PlanEntryLike, planReport } from '../../src/report/model.js';
import { parsePlanDocument } from '../../src/report/read.js';
import { squarify } from '../../src/report/squarify.js';
import { KIND } from '../../src/report/tree.js';

const catKey = (reason: string) => REASON_CATEGORIES[reasonCategory(reason)]!.key;

describe('squarify', () => {
  it('tiles the rectangle: areas proportional to the values, inside it, no overlaps', () => {
    const values = [500, 300, 120, 80, 80, 40, 9, 3, 1];
    const rects = squarify(values, 10, 20, 400, 300);
    const total = values.reduce((a, b) => a + b, 0);
    rects.forEach(([x, y, w, h], i) => {
      expect(w! * h!).toBeCloseTo((values[i]! / total) * 400 * 300, 3);
      expect(x).toBeGreaterThanOrEqual(10 - 1e-9);
      expect(y).toBeGreaterThanOrEqual(20 - 1e-9);
      expect(x! + w!).toBeLessThanOrEqual(410 + 1e-6);
      expect(y! + h!).toBeLessThanOrEqual(320 + 1e-6);
    });
    for (let i = 0; i < rects.length; i++) {
      for (let j = i + 1; j < rects.length; j++) {
        const [ax, ay, aw, ah] = rects[i]!;
        const [bx, by, bw, bh] = rects[j]!;
        const overlap = Math.max(0, Math.min(ax! + aw!, bx! + bw!) - Math.max(ax!, bx!)) * Math.max(0, Math.min(ay! + ah!, by! + bh!) - Math.max(ay!, by!));
        expect(overlap).toBeLessThan(1e-6);
      }
    }
  });

  it('keeps rectangles squarish where slicing would make slivers', () => {
    const values = Array.from({ length: 40 }, () => 1);
    const worst = Math.max(...squarify(values, 0, 0, 800, 500).map(([, , w, h]) => Math.max(w! / h!, h! / w!)));
    expect(worst).toBeLessThan(3); // slicing would give 20 × 500 strips (ratio 25)
  });
});

describe('reason categories and parts', () => {
  it('reads the reasons selection writes', () => {
    expect(catKey('specs/examples/atlas.cern.ch.spec:3 tree /cvmfs/atlas.cern.ch/repo/x/*')).toBe('spec');
    expect(catKey('run1/trace.strace (exact):12 exact /cvmfs/a.ch/x')).toBe('trace');
    expect(catKey('--include /cvmfs/a.ch/**/*.so')).toBe('spec');
    expect(catKey('release AnalysisBase 21.2.75 (--release AnalysisBase,21.2.75)')).toBe('release');
    expect(catKey('base project AnalysisBaseExternals 21.2.75 of AnalysisBase 21.2.75: its setup')).toBe('release');
    expect(catKey('pack pilot-markers for AnalysisBase 21.2.75 (specs/packs/pilot-markers.pack:3): the lastUpdate files')).toBe('pack');
    expect(catKey('symlink closure: target of /cvmfs/a.ch/l')).toBe('symlink');
    expect(catKey('ELF closure: libz.so.1 needed by /cvmfs/a.ch/bin/x')).toBe('elf');
    expect(catKey('ancestor of specs/packs/pilot-markers.pack:3')).toBe('ancestor');
    expect(catKey('base /srv/rootfs')).toBe('base');
    expect(reasonPart('release AnalysisBase 21.2.75 (x)')).toBe('release AnalysisBase 21.2.75');
    expect(reasonPart('pack pilot-markers for AnalysisBase 21.2.75 (y)')).toBe('pack pilot-markers');
    expect(reasonPart('symlink closure: target of /x')).toMatch(/^other/);
  });
});

/** A synthetic plan: `dirs` directories of `files` files each, under two repositories. */
function synthetic(dirs: number, files: number, size = (d: number, f: number) => 100 + ((d * 31 + f * 7) % 1000)): PlanEntryLike[] {
  const out: PlanEntryLike[] = [];
  for (const repo of ['a.ch', 'b.ch']) {
    out.push({ path: `/cvmfs/${repo}`, type: 'dir', size: 0, reason: 'ancestor of s.spec:1' });
    for (let d = 0; d < dirs; d++) {
      const dir = `/cvmfs/${repo}/d${String(d).padStart(4, '0')}`;
      out.push({ path: dir, type: 'dir', size: 0, reason: 's.spec:1 tree /x' });
      for (let f = 0; f < files; f++) out.push({ path: `${dir}/f${String(f).padStart(4, '0')}`, type: f % 10 === 9 ? 'symlink' : 'file', size: size(d, f), reason: 's.spec:1 tree /x' });
    }
  }
  return out;
}

describe('the tree', () => {
  it('counts every entry and byte once, per repository too', () => {
    const entries = synthetic(30, 40);
    const m = planReport({ title: 't', entries, summary: {}, warnings: [] });
    const fileBytes = entries.filter((e) => e.type === 'file').reduce((s, e) => s + e.size, 0);
    expect(m.tree.entries[0]).toBe(entries.length);
    expect(m.tree.bytes[0]).toBe(fileBytes);
    expect(m.repositories.map((r) => r.name)).toEqual(['a.ch', 'b.ch'].sort((x, y) => (m.repositories.find((r) => r.name === y)!.bytes - m.repositories.find((r) => r.name === x)!.bytes) || (x < y ? -1 : 1)));
    expect(m.repositories.reduce((s, r) => s + r.entries, 0)).toBe(entries.length);
  });

  it('sums what is below the threshold into one node per directory, totals unchanged', () => {
    const entries = synthetic(50, 100);
    const m = planReport({ title: 't', entries, summary: {}, warnings: [] }, 200);
    const t = m.tree;
    expect(m.threshold).toBeGreaterThan(0);
    expect(t.name.length).toBeLessThan(200 + 2 * 50 + 10); // kept nodes, plus a "smaller entries" per directory at most
    // Each node's children add up to it, with the directory's own entry.
    for (let i = 0; i < t.name.length; i++) {
      const kids = t.parent.flatMap((p, k) => (p === i ? [k] : []));
      if (kids.length === 0) continue;
      expect(kids.reduce((s, k) => s + t.bytes[k]!, 0)).toBe(t.bytes[i]);
      const own = t.kind[i] === KIND.root ? 0 : 1;
      expect(kids.reduce((s, k) => s + t.entries[k]!, 0) + own).toBe(t.entries[i]);
    }
    expect(t.kind.filter((k) => k === KIND.rest).length).toBeGreaterThan(0);
  });

  it('draws a directory holding only a directory as one node', () => {
    const entries: PlanEntryLike[] = [
      { path: '/cvmfs/r.ch', type: 'dir', size: 0, reason: 'x' },
      { path: '/cvmfs/r.ch/a', type: 'dir', size: 0, reason: 'x' },
      { path: '/cvmfs/r.ch/a/b', type: 'dir', size: 0, reason: 'x' },
      { path: '/cvmfs/r.ch/a/b/f', type: 'file', size: 5, reason: 'x' },
    ];
    const t = planReport({ title: 't', entries, summary: {}, warnings: [] }).tree;
    expect(t.name).toEqual(['/cvmfs', 'r.ch', 'a/b', 'f']);
    expect(t.entries).toEqual([4, 4, 3, 1]);
  });

  it('groups by release part when reasons name parts', () => {
    const entries: PlanEntryLike[] = [
      { path: '/cvmfs/r.ch', type: 'dir', size: 0, reason: 'ancestor of x' },
      { path: '/cvmfs/r.ch/ext', type: 'dir', size: 0, reason: 'base project Ext 1 of P 1: why' },
      { path: '/cvmfs/r.ch/ext/lib.so', type: 'file', size: 50, reason: 'base project Ext 1 of P 1: why' },
      { path: '/cvmfs/r.ch/rel', type: 'dir', size: 0, reason: 'release P 1 (--release P,1)' },
      { path: '/cvmfs/r.ch/rel/bin', type: 'file', size: 70, reason: 'release P 1 (--release P,1)' },
    ];
    const m = planReport({ title: 't', entries, summary: {}, warnings: [] });
    const parts = m.tree.name.filter((_, i) => m.tree.kind[i] === KIND.part);
    expect(parts).toEqual(['release P 1', 'base project Ext 1']);
    expect(m.largestFiles.map((f) => [f.path, f.part])).toEqual([
      ['/cvmfs/r.ch/rel/bin', 'release P 1'],
      ['/cvmfs/r.ch/ext/lib.so', 'base project Ext 1'],
    ]);
  });

  it('sorts a list that is not in path order before building', () => {
    const entries = synthetic(5, 5);
    const shuffled = [...entries].reverse();
    const a = planReport({ title: 't', entries, summary: {}, warnings: [] });
    const b = planReport({ title: 't', entries: shuffled, summary: {}, warnings: [] });
    expect(b.tree).toEqual(a.tree);
  });
});

describe('comparison', () => {
  it('colours each path by its change and keeps both sides\' totals', () => {
    const a: PlanEntryLike[] = [
      { path: '/cvmfs/r.ch', type: 'dir', size: 0, reason: 'x' },
      { path: '/cvmfs/r.ch/gone', type: 'file', size: 10, reason: 'x' },
      { path: '/cvmfs/r.ch/grows', type: 'file', size: 20, reason: 'x' },
      { path: '/cvmfs/r.ch/same', type: 'file', size: 30, reason: 'x' },
    ];
    const b: PlanEntryLike[] = [
      { path: '/cvmfs/r.ch', type: 'dir', size: 0, reason: 'x' },
      { path: '/cvmfs/r.ch/grows', type: 'file', size: 25, reason: 'x' },
      { path: '/cvmfs/r.ch/new', type: 'file', size: 40, reason: 'x' },
      { path: '/cvmfs/r.ch/same', type: 'file', size: 30, reason: 'x' },
    ];
    const m = compareReport({ name: 'A', entries: a }, { name: 'B', entries: b });
    const t = m.tree;
    const catOf = (name: string) => t.cat[t.name.indexOf(name)];
    expect([catOf('gone'), catOf('grows'), catOf('same'), catOf('new')]).toEqual([CHANGE.removed, CHANGE.grown, CHANGE.same, CHANGE.added]);
    expect([t.a![0], t.b![0]]).toEqual([60, 95]);
    expect(m.compare!.added.map((r) => r.path)).toEqual(['/cvmfs/r.ch/new']);
    expect(m.compare!.removed.map((r) => r.path)).toEqual(['/cvmfs/r.ch/gone']);
    expect(m.compare!.grown.map((r) => r.path)).toEqual(['/cvmfs/r.ch/grows']);
  });
});

describe('the page', () => {
  it('escapes names everywhere (tables and embedded data)', () => {
    const evil = '</script><img src=x onerror=alert(1)>';
    const entries: PlanEntryLike[] = [
      { path: '/cvmfs/r.ch', type: 'dir', size: 0, reason: 'x' },
      { path: `/cvmfs/r.ch/${evil}`, type: 'file', size: 9000, reason: `s.spec:1 exact ${evil}` },
    ];
    const html = renderHtml(planReport({ title: evil, entries, summary: {}, warnings: [{ kind: 'k', message: evil }] }));
    expect(html).not.toContain('<img');
    expect(html.match(/<\/script>/g)!.length).toBe(2); // the data's and the script's own
  });

  it('is the same bytes for the same plan', () => {
    const make = () => renderHtml(planReport({ title: 't', entries: synthetic(20, 20), summary: {}, warnings: [] }, 100));
    expect(make()).toBe(make());
  });

  it("reads plan --json's layout a line at a time, and names a bad line", () => {
    const doc = '{"entries":[\n{"path":"/cvmfs/r.ch","type":"dir","size":0,"mode":493,"uid":0,"gid":0,"mtime":0,"reason":"x"},\n{"path":"/cvmfs/r.ch/f","type":"file","size":3,"mode":420,"uid":0,"gid":0,"mtime":0,"reason":"x"}\n],\n"summary":{"entries":2,"warnings":[{"kind":"k","message":"m"}]}}\n';
    // Split inside a line: chunks are not lines.
    const bytes = Buffer.from(doc);
    const p = parsePlanDocument([bytes.subarray(0, 50), bytes.subarray(50)], 'p.json');
    expect(p.entries.map((e) => e.path)).toEqual(['/cvmfs/r.ch', '/cvmfs/r.ch/f']);
    expect(p.warnings).toEqual([{ kind: 'k', message: 'm' }]);
    expect(() => parsePlanDocument([Buffer.from('{"entries":[\n{"path":1,"type":"file","size":1,"reason":""}\n')], 'p.json')).toThrow('p.json:2: not a plan entry');
    expect(() => parsePlanDocument([Buffer.from('{"entries":[\n')], 'p.json')).toThrow('ends before its summary');
  });
});

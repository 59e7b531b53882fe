// The page's script: the treemap (squarify.ts's layout), breadcrumb, search, keyboard, sortable
// tables. Plain browser JavaScript as text (the project compiles for Node, not the DOM); it reads
// the report's data from the <script type="application/json"> html.ts writes, and runs on
// file:// with no network. With JavaScript off, the page is the static tables html.ts wrote.
import { squarify } from './squarify.js';

const BROWSER_SCRIPT = String.raw`
'use strict';
(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var t = data.tree;
  var n = t.name.length;
  var kids = [];
  for (var i = 0; i < n; i++) kids.push([]);
  for (var i = 1; i < n; i++) kids[t.parent[i]].push(i);
  var KIND_REST = 5, KIND_PART = 2;
  var map = document.getElementById('treemap');
  var crumbs = document.getElementById('breadcrumb');
  var totals = document.getElementById('totals');
  var detail = document.getElementById('detail');
  var current = 0;

  function human(b) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], k = 0, v = b;
    while (v >= 1024 && k < u.length - 1) { v /= 1024; k++; }
    return k === 0 ? b + ' B' : v.toFixed(1) + ' ' + u[k];
  }
  function num(x) { return x.toLocaleString('en-US'); }
  function catOf(i) { return data.categories[t.cat[i]]; }
  function pathOf(i) {
    var names = [];
    // Parts group entries; they are no directory of the path.
    for (var k = i; k > 0; k = t.parent[k]) if (t.kind[k] !== KIND_PART) names.push(t.name[k]);
    return names.reverse();
  }
  function describe(i) {
    var s = t.name[i] + ': ' + num(t.entries[i]) + ' entries, ' + human(t.bytes[i]) + ', mostly ' + catOf(i).label;
    if (t.a) s += ' (' + human(t.a[i]) + ' → ' + human(t.b[i]) + ')';
    return s;
  }

  function showTotals(i) {
    totals.setAttribute('data-entries', String(t.entries[i]));
    totals.setAttribute('data-bytes', String(t.bytes[i]));
    var s = num(t.entries[i]) + ' entries, ' + num(t.bytes[i]) + ' bytes (' + human(t.bytes[i]) + ')';
    if (t.a) {
      totals.setAttribute('data-a', String(t.a[i]));
      totals.setAttribute('data-b', String(t.b[i]));
      var d = t.b[i] - t.a[i];
      s = num(t.entries[i]) + ' paths; ' + human(t.a[i]) + ' → ' + human(t.b[i]) + ' (' + (d >= 0 ? '+' : '−') + human(Math.abs(d)) + ')';
    }
    totals.textContent = s;
  }

  function showCrumbs(i) {
    var chain = [];
    for (var k = i; k >= 0; k = t.parent[k]) chain.push(k);
    chain.reverse();
    var ol = document.createElement('ol');
    chain.forEach(function (k, at) {
      var li = document.createElement('li');
      if (at === chain.length - 1) {
        var here = document.createElement('span');
        here.setAttribute('aria-current', 'location');
        here.textContent = t.name[k];
        li.appendChild(here);
      } else {
        var b = document.createElement('button');
        b.type = 'button';
        b.textContent = t.name[k];
        b.addEventListener('click', function () { go(k, true); });
        li.appendChild(b);
      }
      ol.appendChild(li);
    });
    crumbs.replaceChildren(ol);
  }

  function cell(i, r) {
    var c = document.createElement('div');
    var cat = catOf(i);
    c.className = 'cell cat-' + t.cat[i] + (kids[i].length > 0 ? ' open' : '');
    c.style.left = r[0] + 'px';
    c.style.top = r[1] + 'px';
    c.style.width = Math.max(0, r[2] - 1) + 'px';
    c.style.height = Math.max(0, r[3] - 1) + 'px';
    c.tabIndex = 0;
    c.setAttribute('role', 'button');
    c.setAttribute('data-node', String(i));
    c.setAttribute('data-name', t.name[i]);
    c.setAttribute('aria-label', describe(i) + (kids[i].length > 0 ? '; Enter opens it' : ''));
    c.title = '/cvmfs/' + pathOf(i).join('/') + '\n' + describe(i);
    if (r[2] > 40 && r[3] > 18) {
      var label = document.createElement('span');
      label.className = 'label';
      label.textContent = t.name[i] + ' ' + human(t.bytes[i]);
      c.appendChild(label);
      if (r[3] > 34) {
        var tag = document.createElement('span');
        tag.className = 'tag';
        tag.textContent = cat.tag;
        c.appendChild(tag);
      }
    }
    // One level more inside, for context: clicking one of those opens it directly.
    if (kids[i].length > 0 && r[2] > 60 && r[3] > 50) nest(c, i, r[2] - 4, r[3] - 24);
    c.addEventListener('click', function (ev) {
      var inner = ev.target.closest('.sub');
      open(inner ? Number(inner.getAttribute('data-node')) : i);
    });
    c.addEventListener('keydown', function (ev) { onKey(ev, c, i); });
    return c;
  }

  function nest(c, i, w, h) {
    var shown = kids[i].filter(function (k) { return t.bytes[k] > 0; });
    var rects = squarify(shown.map(function (k) { return t.bytes[k]; }), 2, 22, w, h);
    shown.forEach(function (k, at) {
      var r = rects[at];
      if (r[2] < 3 || r[3] < 3) return;
      var s = document.createElement('div');
      s.className = 'sub cat-' + t.cat[k];
      s.setAttribute('data-node', String(k));
      s.title = t.name[k] + ': ' + human(t.bytes[k]) + ' (' + catOf(k).tag + ')';
      s.style.left = r[0] + 'px';
      s.style.top = r[1] + 'px';
      s.style.width = Math.max(0, r[2] - 1) + 'px';
      s.style.height = Math.max(0, r[3] - 1) + 'px';
      if (r[2] > 50 && r[3] > 16) s.textContent = t.name[k];
      c.appendChild(s);
    });
  }

  function drawMap(i) {
    var w = map.clientWidth, h = map.clientHeight;
    var shown = kids[i].filter(function (k) { return t.bytes[k] > 0; });
    var rects = squarify(shown.map(function (k) { return t.bytes[k]; }), 0, 0, w, h);
    map.replaceChildren();
    shown.forEach(function (k, at) { map.appendChild(cell(k, rects[at])); });
    if (shown.length === 0) {
      var p = document.createElement('p');
      p.className = 'empty';
      p.textContent = kids[i].length > 0 ? 'Nothing here holds bytes (directories and links only).' : 'A single entry.';
      map.appendChild(p);
    }
  }

  function go(i, focus) {
    current = i;
    showCrumbs(i);
    showTotals(i);
    drawMap(i);
    detail.textContent = describe(i);
    // Keyboard users land on the first rectangle of what they opened.
    var first = map.querySelector('.cell');
    if (focus && first) first.focus();
  }

  function open(i) {
    if (kids[i].length > 0) go(i, true);
    else detail.textContent = '/cvmfs/' + pathOf(i).join('/') + ' — ' + describe(i);
  }

  function onKey(ev, c, i) {
    var cells = Array.prototype.slice.call(map.querySelectorAll('.cell'));
    var at = cells.indexOf(c);
    if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); open(i); }
    else if (ev.key === 'Escape' || ev.key === 'Backspace') { ev.preventDefault(); if (current > 0) go(t.parent[current], true); }
    else if (ev.key === 'ArrowRight' || ev.key === 'ArrowDown') { ev.preventDefault(); if (cells[at + 1]) cells[at + 1].focus(); }
    else if (ev.key === 'ArrowLeft' || ev.key === 'ArrowUp') { ev.preventDefault(); if (cells[at - 1]) cells[at - 1].focus(); }
  }

  // Search: names containing the text, largest first; choosing one opens where it is.
  var search = document.getElementById('search');
  var results = document.getElementById('results');
  search.addEventListener('input', function () {
    var q = search.value.trim().toLowerCase();
    results.replaceChildren();
    if (q.length < 2) return;
    var hits = [];
    for (var k = 1; k < n && hits.length < 2000; k++) if (t.kind[k] !== KIND_REST && t.name[k].toLowerCase().indexOf(q) >= 0) hits.push(k);
    hits.sort(function (x, y) { return t.bytes[y] - t.bytes[x] || x - y; });
    hits.slice(0, 50).forEach(function (k) {
      var li = document.createElement('li');
      var b = document.createElement('button');
      b.type = 'button';
      b.textContent = pathOf(k).join('/') + ' — ' + human(t.bytes[k]);
      b.addEventListener('click', function () {
        var into = kids[k].length > 0 ? k : t.parent[k];
        go(into, false);
        var target = map.querySelector('[data-node="' + k + '"]');
        (target || map.querySelector('.cell') || search).focus();
        if (kids[k].length === 0) detail.textContent = '/cvmfs/' + pathOf(k).join('/') + ' — ' + describe(k);
      });
      li.appendChild(b);
      results.appendChild(li);
    });
    if (hits.length === 0) results.textContent = 'No name contains that.';
  });

  // Sortable tables: a header's button sorts by its column (numbers by their data-value).
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.querySelectorAll('th'), function (th, col) {
      var b = document.createElement('button');
      b.type = 'button';
      b.textContent = th.textContent;
      th.replaceChildren(b);
      b.addEventListener('click', function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var down = th.getAttribute('aria-sort') !== 'descending';
        Array.prototype.forEach.call(table.querySelectorAll('th'), function (o) { o.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', down ? 'descending' : 'ascending');
        rows.sort(function (x, y) {
          var a = x.cells[col], c = y.cells[col];
          var va = a.getAttribute('data-value'), vc = c.getAttribute('data-value');
          var d = va !== null && vc !== null ? Number(va) - Number(vc) : a.textContent.localeCompare(c.textContent);
          return down ? -d : d;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  document.getElementById('map-controls').hidden = false;
  map.hidden = false;
  var resizing = null;
  window.addEventListener('resize', function () { clearTimeout(resizing); resizing = setTimeout(function () { drawMap(current); }, 100); });
  go(0, false);
  document.documentElement.setAttribute('data-ready', '1');
})();
`;

/** The page's script: the layout function's own source, then the code that uses it. */
export function browserScript(): string {
  return `${squarify.toString()}\n${BROWSER_SCRIPT}`;
}

// Draws conf-examples/grafana-dashboard.json from scrapes of the module's
// /metrics (t/tools/dashboard-png.sh; see dashboard.html).  Not Grafana:
//
// - the scrapes are turned into series as Prometheus would store them
//   (labels instance and job added; a series missing from a scrape has no
//   value at that time, as a stale series);
// - each target is evaluated at every scrape time by a small evaluator of
//   the PromQL the dashboard uses: selectors with =, !=, =~, !~ matchers,
//   rate() and increase() over a range (the increase between the first
//   and the last sample in the range, counter resets allowed, without
//   Prometheus' extrapolation to the range's ends), sum/max/min/avg/count
//   [by (labels)], histogram_quantile(), + - * / between numbers and
//   vectors (one-to-one on equal labels).  $__rate_interval is 1m,
//   $instance matches every instance;
// - a panel whose query uses anything else, or whose type is not
//   timeseries, state-timeline, gauge or stat, says "not rendered" and
//   draws nothing.

'use strict';

const INSTANCE = '127.0.0.1:8090';
const RATE_INTERVAL = '1m';
const COLORS = ['#73bf69', '#f2cc0c', '#8ab8ff', '#ff780a', '#f2495c',
                '#5794f2', '#b877d9', '#705da0', '#37872d', '#fade2a'];
const NAMED = { green: '#73bf69', red: '#f2495c', orange: '#ff9830',
                yellow: '#fade2a', blue: '#5794f2' };

// ---------------------------------------------------------------- scrapes

function parseExposition(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line === '' || line[0] === '#') {
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) {
      continue;
    }
    const labels = { __name__: m[1], instance: INSTANCE, job: 'siteflow' };
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/g;
    let l;
    while ((l = re.exec(m[2] || '')) !== null) {
      labels[l[1]] = l[2].replace(/\\(.)/g,
                                  (a, c) => (c === 'n' ? '\n' : c));
    }
    const v = m[3] === '+Inf' ? Infinity
            : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    out.push({ labels: labels, v: v });
  }
  return out;
}

function labelKey(labels, drop) {
  return Object.keys(labels).filter((k) => !(drop && drop[k])).sort()
      .map((k) => k + '=' + JSON.stringify(labels[k])).join(',');
}

// series: key -> { labels, v: [value or undefined per scrape] }
function buildStore(scrapes) {
  const series = new Map();
  scrapes.forEach((s, i) => {
    for (const smp of parseExposition(s.text)) {
      const k = labelKey(smp.labels);
      if (!series.has(k)) {
        series.set(k, { labels: smp.labels,
                        v: new Array(scrapes.length) });
      }
      series.get(k).v[i] = smp.v;
    }
  });
  return { times: scrapes.map((s) => s.t), series: [...series.values()] };
}

// ----------------------------------------------------------------- parser

class Unsupported extends Error {}

function tokenize(src) {
  const toks = [];
  // a number or duration, a name, a string, an operator
  const re = new RegExp('\\s*(?:([0-9]+(?:\\.[0-9]+)?(?:[smhd])?)'
                        + '|([a-zA-Z_:][a-zA-Z0-9_:]*)'
                        + '|"((?:[^"\\\\]|\\\\.)*)"'
                        + '|(=~|!~|!=|==|>=|<=|[-+*/(){}\\[\\],=<>^%]))',
                        'y');
  let pos = 0;
  while (pos < src.length) {
    if (/^\s*$/.test(src.slice(pos))) {
      break;
    }
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) {
      throw new Unsupported('cannot read "' + src.slice(pos, pos + 12)
                            + '"');
    }
    pos = re.lastIndex;
    if (m[1] !== undefined) {
      toks.push({ t: /[smhd]$/.test(m[1]) ? 'dur' : 'num', v: m[1] });
    } else if (m[2] !== undefined) {
      toks.push({ t: 'id', v: m[2] });
    } else if (m[3] !== undefined) {
      toks.push({ t: 'str', v: m[3].replace(/\\(.)/g, '$1') });
    } else {
      toks.push({ t: 'op', v: m[4] });
    }
  }
  return toks;
}

const PANEL_TYPES = ['timeseries', 'state-timeline', 'gauge', 'stat'];
const AGGR = new Set(['sum', 'max', 'min', 'avg', 'count']);
const RANGE_FN = new Set(['rate', 'increase']);

function parse(src) {
  const toks = tokenize(src);
  let i = 0;
  const peek = () => toks[i] || { t: 'eof', v: '' };
  const next = () => toks[i++] || { t: 'eof', v: '' };
  const expect = (v) => {
    const t = next();
    if (t.v !== v) {
      throw new Unsupported('expected "' + v + '", found "' + t.v + '"');
    }
    return t;
  };

  function labelList() {
    expect('(');
    const l = [];
    while (peek().v !== ')') {
      l.push(next().v);
      if (peek().v === ',') {
        next();
      }
    }
    expect(')');
    return l;
  }

  function selector(name) {
    const m = [{ l: '__name__', op: '=', v: name }];
    if (peek().v === '{') {
      next();
      while (peek().v !== '}') {
        const l = next().v;
        const op = next().v;
        if (!['=', '!=', '=~', '!~'].includes(op)) {
          throw new Unsupported('matcher ' + op);
        }
        const v = next();
        if (v.t !== 'str') {
          throw new Unsupported('matcher value');
        }
        m.push({ l: l, op: op, v: v.v });
        if (peek().v === ',') {
          next();
        }
      }
      expect('}');
    }
    return { k: 'sel', m: m };
  }

  function primary() {
    const t = next();
    if (t.t === 'num') {
      return { k: 'num', v: Number(t.v) };
    }
    if (t.v === '(') {
      const e = expr();
      expect(')');
      return e;
    }
    if (t.v === '-') {
      return { k: 'bin', op: '*', a: { k: 'num', v: -1 }, b: primary() };
    }
    if (t.t !== 'id') {
      throw new Unsupported('unexpected "' + t.v + '"');
    }
    if (AGGR.has(t.v)) {
      let by = null;
      if (peek().v === 'by') {
        next();
        by = labelList();
      } else if (peek().v === 'without') {
        throw new Unsupported('without');
      }
      expect('(');
      const a = expr();
      expect(')');
      if (peek().v === 'by') {
        next();
        by = labelList();
      }
      return { k: 'aggr', op: t.v, by: by, a: a };
    }
    if (RANGE_FN.has(t.v)) {
      expect('(');
      const s = next();
      if (s.t !== 'id') {
        throw new Unsupported(t.v + '() of an expression');
      }
      const sel = selector(s.v);
      expect('[');
      const d = next();
      if (d.t !== 'dur') {
        throw new Unsupported('range');
      }
      expect(']');
      expect(')');
      const mult = { s: 1, m: 60, h: 3600, d: 86400 }[d.v.slice(-1)];
      return { k: 'range', fn: t.v, sel: sel,
               range: parseFloat(d.v) * mult };
    }
    if (t.v === 'histogram_quantile') {
      expect('(');
      const q = next();
      if (q.t !== 'num') {
        throw new Unsupported('quantile');
      }
      expect(',');
      const a = expr();
      expect(')');
      return { k: 'hq', q: Number(q.v), a: a };
    }
    if (peek().v === '(') {
      throw new Unsupported('function ' + t.v + '()');
    }
    return selector(t.v);
  }

  function term() {
    let a = primary();
    while (peek().v === '*' || peek().v === '/') {
      const op = next().v;
      a = { k: 'bin', op: op, a: a, b: primary() };
    }
    return a;
  }

  function expr() {
    let a = term();
    while (peek().v === '+' || peek().v === '-') {
      const op = next().v;
      a = { k: 'bin', op: op, a: a, b: term() };
    }
    return a;
  }

  const e = expr();
  if (i < toks.length) {
    throw new Unsupported('operator "' + peek().v + '"');
  }
  return e;
}

// -------------------------------------------------------------- evaluator

function matches(labels, m) {
  for (const x of m) {
    const v = labels[x.l] === undefined ? '' : labels[x.l];
    let ok;
    if (x.op === '=' || x.op === '!=') {
      ok = (v === x.v) === (x.op === '=');
    } else {
      ok = new RegExp('^(?:' + x.v + ')$').test(v) === (x.op === '=~');
    }
    if (!ok) {
      return false;
    }
  }
  return true;
}

const NONAME = { __name__: true };

function without(labels, drop) {
  const o = {};
  for (const k of Object.keys(labels)) {
    if (!drop[k]) {
      o[k] = labels[k];
    }
  }
  return o;
}

// value at scrape index i: { s: true, v } scalar or { vec: [{labels, v}] }
function evaluate(node, store, i) {
  switch (node.k) {
  case 'num':
    return { s: true, v: node.v };

  case 'sel':
    return { vec: store.series.filter((x) => matches(x.labels, node.m)
                                          && x.v[i] !== undefined)
                   .map((x) => ({ labels: x.labels, v: x.v[i] })) };

  case 'range': {
    const t = store.times[i];
    const vec = [];
    for (const x of store.series) {
      if (!matches(x.labels, node.sel.m)) {
        continue;
      }
      let first = null;
      let last = null;
      let inc = 0;
      let prev = null;
      for (let j = 0; j <= i; j++) {
        if (store.times[j] <= t - node.range || x.v[j] === undefined) {
          continue;
        }
        if (first === null) {
          first = j;
        } else {
          inc += x.v[j] >= prev ? x.v[j] - prev : x.v[j];
        }
        prev = x.v[j];
        last = j;
      }
      if (first === null || last === first) {
        continue;
      }
      const span = store.times[last] - store.times[first];
      const rate = inc / span;
      vec.push({ labels: without(x.labels, NONAME),
                 v: node.fn === 'rate' ? rate : rate * node.range });
    }
    return { vec: vec };
  }

  case 'aggr': {
    const a = evaluate(node.a, store, i);
    if (a.s) {
      throw new Unsupported('aggregation of a number');
    }
    const groups = new Map();
    for (const x of a.vec) {
      const g = {};
      for (const l of node.by || []) {
        if (x.labels[l] !== undefined) {
          g[l] = x.labels[l];
        }
      }
      const k = labelKey(g);
      if (!groups.has(k)) {
        groups.set(k, { labels: g, vs: [] });
      }
      groups.get(k).vs.push(x.v);
    }
    const f = {
      sum: (vs) => vs.reduce((p, c) => p + c, 0),
      max: (vs) => Math.max(...vs),
      min: (vs) => Math.min(...vs),
      avg: (vs) => vs.reduce((p, c) => p + c, 0) / vs.length,
      count: (vs) => vs.length,
    }[node.op];
    return { vec: [...groups.values()].map((g) => ({ labels: g.labels,
                                                     v: f(g.vs) })) };
  }

  case 'hq': {
    const a = evaluate(node.a, store, i);
    const groups = new Map();
    for (const x of a.vec || []) {
      const g = without(x.labels, { __name__: true, le: true });
      const k = labelKey(g);
      if (!groups.has(k)) {
        groups.set(k, { labels: g, b: [] });
      }
      groups.get(k).b.push({ le: Number(x.labels.le === '+Inf' ? Infinity
                                                              : x.labels.le),
                             c: x.v });
    }
    const vec = [];
    for (const g of groups.values()) {
      const b = g.b.sort((p, q) => p.le - q.le);
      if (b.length < 2 || b[b.length - 1].le !== Infinity) {
        continue;
      }
      const total = b[b.length - 1].c;
      if (!(total > 0)) {
        continue;                       /* NaN: no requests, no point */
      }
      const rank = node.q * total;
      let j = 0;
      while (j < b.length - 1 && b[j].c < rank) {
        j++;
      }
      let v;
      if (b[j].le === Infinity) {
        v = b[b.length - 2].le;
      } else {
        const lo = j === 0 ? 0 : b[j - 1].le;
        const clo = j === 0 ? 0 : b[j - 1].c;
        const n = b[j].c - clo;
        v = n > 0 ? lo + (b[j].le - lo) * (rank - clo) / n : b[j].le;
      }
      vec.push({ labels: g.labels, v: v });
    }
    return { vec: vec };
  }

  case 'bin': {
    const a = evaluate(node.a, store, i);
    const b = evaluate(node.b, store, i);
    const op = {
      '+': (x, y) => x + y, '-': (x, y) => x - y,
      '*': (x, y) => x * y, '/': (x, y) => x / y,
    }[node.op];
    if (a.s && b.s) {
      return { s: true, v: op(a.v, b.v) };
    }
    if (a.s || b.s) {
      const vec = a.s ? b.vec : a.vec;
      return { vec: vec.map((x) => ({
        labels: without(x.labels, NONAME),
        v: a.s ? op(a.v, x.v) : op(x.v, b.v) })) };
    }
    const right = new Map(b.vec.map((x) => [labelKey(x.labels, NONAME),
                                             x]));
    const vec = [];
    for (const x of a.vec) {
      const y = right.get(labelKey(x.labels, NONAME));
      if (y) {
        vec.push({ labels: without(x.labels, NONAME), v: op(x.v, y.v) });
      }
    }
    return { vec: vec };
  }
  }
  throw new Unsupported(node.k);
}

function expand(expr) {
  return expr.replace(/\$__rate_interval|\$\{__rate_interval\}/g,
                      RATE_INTERVAL)
             .replace(/\$instance|\$\{instance\}/g, '.+');
}

// a target over all scrapes: [{ name, pts: [value or null per scrape] }]
function runTarget(target, store) {
  const ast = parse(expand(target.expr));
  const byKey = new Map();
  for (let i = 0; i < store.times.length; i++) {
    const r = evaluate(ast, store, i);
    const vec = r.s ? [{ labels: {}, v: r.v }] : r.vec;
    for (const x of vec) {
      const k = labelKey(x.labels);
      if (!byKey.has(k)) {
        const name = (target.legendFormat || '{{__name__}}').replace(
          /\{\{\s*([a-zA-Z_]+)\s*\}\}/g,
          (m, l) => (x.labels[l] === undefined ? '' : x.labels[l])).trim();
        byKey.set(k, { name: name || labelKey(x.labels) || 'value',
                       pts: new Array(store.times.length).fill(null) });
      }
      if (Number.isFinite(x.v)) {
        byKey.get(k).pts[i] = x.v;
      }
    }
  }
  return [...byKey.values()].sort((p, q) => (p.name < q.name ? -1 : 1));
}

// ---------------------------------------------------------------- drawing

function fmt(v, unit) {
  const num = (x) => {
    const a = Math.abs(x);
    if (a === 0) {
      return '0';
    }
    if (a >= 1000) {
      return (x / 1000).toFixed(a >= 10000 ? 0 : 1) + 'K';
    }
    if (a >= 100) {
      return x.toFixed(0);
    }
    if (a >= 10) {
      return x.toFixed(1).replace(/\.0$/, '');
    }
    if (a >= 1) {
      return x.toFixed(2).replace(/\.?0+$/, '');
    }
    return x.toPrecision(2).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
  };
  switch (unit) {
  case 'percentunit':
    return (v * 100).toFixed(v < 0.1 ? 1 : 0) + '%';
  case 'reqps':
    return num(v) + ' req/s';
  case 'ops':
    return num(v) + ' ops/s';
  case 's':
    if (v !== 0 && Math.abs(v) < 1) {
      return num(v * 1000) + ' ms';
    }
    return Math.abs(v) >= 120 ? num(v / 60) + ' min' : num(v) + ' s';
  default:
    return num(v);
  }
}

function niceMax(m) {
  if (!(m > 0)) {
    return 1;
  }
  const p = Math.pow(10, Math.floor(Math.log10(m)));
  for (const f of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (f * p >= m) {
      return f * p;
    }
  }
  return 10 * p;
}

function hhmm(t) {
  const d = new Date(t * 1000);
  const z = (n) => String(n).padStart(2, '0');
  return z(d.getUTCHours()) + ':' + z(d.getUTCMinutes());
}

function color(c, i) {
  return NAMED[c] || c || COLORS[i % COLORS.length];
}

function thresholdColor(v, fc) {
  const steps = (fc.thresholds && fc.thresholds.steps) || [];
  let c = 'green';
  for (const s of steps) {
    if (s.value === null || v >= s.value) {
      c = s.color;
    }
  }
  return color(c, 0);
}

function el(tag, attrs, parent, text) {
  const ns = /^(svg|path|line|text|rect|polyline)$/.test(tag)
             ? 'http://www.w3.org/2000/svg' : null;
  const e = ns ? document.createElementNS(ns, tag)
               : document.createElement(tag);
  for (const k of Object.keys(attrs || {})) {
    e.setAttribute(k, attrs[k]);
  }
  if (text !== undefined) {
    e.textContent = text;
  }
  if (parent) {
    parent.appendChild(e);
  }
  return e;
}

function notRendered(box, why) {
  const d = el('div', { class: 'nr' }, box);
  el('b', {}, d, 'not rendered');
  el('small', {}, d, why);
}

// the panel's byName overrides of the color (fixedColor), else the palette
function seriesColors(series, overrides) {
  series.forEach((s, k) => {
    s.color = color(null, k);
    for (const o of overrides || []) {
      if (o.matcher && o.matcher.id === 'byName'
          && o.matcher.options === s.name)
      {
        for (const p of o.properties || []) {
          if (p.id === 'color' && p.value && p.value.fixedColor) {
            s.color = color(p.value.fixedColor, k);
          }
        }
      }
    }
  });
}

function legend(box, series) {
  const lg = el('div', { class: 'legend' }, box);
  series.forEach((s) => {
    const it = el('span', { class: 'item' }, lg);
    el('i', { style: 'background:' + s.color }, it);
    it.appendChild(document.createTextNode(s.name));
  });
}

function timeseries(box, w, h, series, store, unit, t0) {
  const L = 64;
  const R = 10;
  const T = 30;
  const B = 36;
  const pw = w - L - R;
  const ph = h - T - B;
  const svg = el('svg', { width: w, height: h - 16,
                          style: 'position:absolute;left:0;top:0' }, box);
  let max = 0;
  for (const s of series) {
    for (const v of s.pts) {
      if (v !== null && v > max) {
        max = v;
      }
    }
  }
  max = niceMax(max);
  const t1 = store.times[store.times.length - 1];
  const x = (t) => L + (t - t0) / (t1 - t0) * pw;
  const y = (v) => T + ph - v / max * ph;
  for (let k = 0; k <= 4; k++) {
    const v = max * k / 4;
    el('line', { x1: L, x2: L + pw, y1: y(v), y2: y(v),
                 stroke: '#2c2f35', 'stroke-width': 1 }, svg);
    el('text', { x: L - 6, y: y(v) + 3, 'text-anchor': 'end' }, svg,
       fmt(v, unit));
  }
  const step = (t1 - t0) > 600 ? 300 : 60;
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    el('text', { x: x(t), y: T + ph + 14, 'text-anchor': 'middle' }, svg,
       hhmm(t));
  }
  series.forEach((s) => {
    let d = '';
    let pen = false;
    s.pts.forEach((v, i) => {
      if (v === null || store.times[i] < t0) {
        pen = false;
        return;
      }
      d += (pen ? 'L' : 'M') + x(store.times[i]).toFixed(1) + ','
           + y(v).toFixed(1);
      pen = true;
    });
    if (d) {
      el('path', { d: d, fill: 'none', stroke: s.color,
                   'stroke-width': 1.5, 'stroke-linejoin': 'round' }, svg);
    }
  });
  if (series.length === 0) {
    el('text', { x: L + pw / 2, y: T + ph / 2, 'text-anchor': 'middle' },
       svg, 'No data');
  }
  legend(box, series);
}

function stateTimeline(box, w, h, series, store, fc, t0) {
  const map = {};
  for (const m of fc.mappings || []) {
    if (m.type === 'value') {
      Object.assign(map, m.options);
    }
  }
  const L = 90;
  const svg = el('svg', { width: w, height: h,
                          style: 'position:absolute;left:0;top:0' }, box);
  const t1 = store.times[store.times.length - 1];
  const pw = w - L - 10;
  const x = (t) => L + (t - t0) / (t1 - t0) * pw;
  const rowH = Math.min(40, (h - 70) / Math.max(series.length, 1));
  series.forEach((s, k) => {
    const top = 34 + k * (rowH + 6);
    el('text', { x: L - 8, y: top + rowH / 2 + 4, 'text-anchor': 'end',
                 style: 'font-size:11px;fill:#ccccdc' }, svg, s.name);
    for (let i = 0; i < s.pts.length; i++) {
      const v = s.pts[i];
      if (v === null || store.times[i] < t0) {
        continue;
      }
      let j = i;
      while (j + 1 < s.pts.length && s.pts[j + 1] === v) {
        j++;
      }
      const end = j + 1 < s.pts.length ? store.times[j + 1] : t1;
      const m = map[String(v)] || {};
      const x0 = x(store.times[i]);
      const x1 = x(end);
      el('rect', { x: x0, y: top, width: Math.max(x1 - x0 - 1, 1),
                   height: rowH, rx: 2,
                   fill: m.color ? color(m.color) : thresholdColor(v, fc),
                   'fill-opacity': 0.85 }, svg);
      if (x1 - x0 > 40) {
        el('text', { x: (x0 + x1) / 2, y: top + rowH / 2 + 4,
                     'text-anchor': 'middle',
                     style: 'fill:#111217;font-size:11px;font-weight:600' },
           svg, m.text || String(v));
      }
      i = j;
    }
  });
  const step = (t1 - t0) > 600 ? 300 : 60;
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    el('text', { x: x(t), y: h - 24, 'text-anchor': 'middle' }, svg,
       hhmm(t));
  }
  if (series.length === 0) {
    el('text', { x: w / 2, y: h / 2, 'text-anchor': 'middle' }, svg,
       'No data');
  }
}

function gauge(box, w, h, series, fc, unit) {
  const last = series.map((s) => {
    for (let i = s.pts.length - 1; i >= 0; i--) {
      if (s.pts[i] !== null) {
        return { name: s.name, v: s.pts[i] };
      }
    }
    return null;
  }).filter((x) => x);
  const svg = el('svg', { width: w, height: h,
                          style: 'position:absolute;left:0;top:0' }, box);
  if (last.length === 0) {
    el('text', { x: w / 2, y: h / 2, 'text-anchor': 'middle' }, svg,
       'No data');
    return;
  }
  const v = last[0].v;
  const min = fc.min === undefined ? 0 : fc.min;
  const max = fc.max === undefined ? 1 : fc.max;
  const cx = w / 2;
  const cy = h * 0.68;
  const r = Math.min(w * 0.36, h * 0.45);
  const arc = (f0, f1, c, sw) => {
    const a0 = Math.PI * (1 - f0);
    const a1 = Math.PI * (1 - f1);
    el('path', { d: 'M' + (cx + r * Math.cos(a0)) + ','
                   + (cy - r * Math.sin(a0))
                   + 'A' + r + ',' + r + ' 0 0 1 '
                   + (cx + r * Math.cos(a1)) + ',' + (cy - r * Math.sin(a1)),
                 fill: 'none', stroke: c, 'stroke-width': sw }, svg);
  };
  arc(0, 1, '#2c2f35', 14);
  const f = Math.max(0, Math.min(1, (v - min) / (max - min)));
  if (f > 0) {
    arc(0, Math.max(f, 0.005), thresholdColor(v, fc), 14);
  }
  el('text', { x: cx, y: cy - 4, 'text-anchor': 'middle',
               style: 'font-size:' + Math.round(r * 0.42)
                      + 'px;font-weight:600;fill:' + thresholdColor(v, fc) },
     svg, fmt(v, unit));
  el('text', { x: cx, y: cy + 18, 'text-anchor': 'middle' }, svg,
     last[0].name);
}

function stat(box, w, h, series, fc, unit) {
  const s = series[0];
  const v = s ? s.pts.filter((x) => x !== null).pop() : undefined;
  const d = el('div', { style: 'position:absolute;left:0;right:0;top:40%;'
                               + 'text-align:center;font-size:32px;'
                               + 'font-weight:600' }, box,
               v === undefined ? 'No data' : fmt(v, unit));
  if (v !== undefined) {
    d.style.color = thresholdColor(v, fc);
  }
}

function render() {
  const dash = window.SF_DASHBOARD;
  const scrapes = window.SF_SCRAPES;
  const store = buildStore(scrapes);
  const grid = document.getElementById('grid');
  const W = grid.clientWidth;
  const cw = W / 24;
  const CELL = 30;
  const GAP = 8;
  let bottom = 0;

  // the first minute has no rate yet: start the time axes there
  const t0 = Math.min(store.times[0] + 60,
                      store.times[store.times.length - 1] - 60);

  document.getElementById('title').textContent = dash.title;
  document.getElementById('sub').textContent =
    'Drawn by t/tools/dashboard-png.sh from ' + scrapes.length
    + ' scrapes of the demo\'s /siteflow/admin/metrics, '
    + hhmm(store.times[0]) + '\u2013'
    + hhmm(store.times[store.times.length - 1])
    + ' UTC (not by Grafana; rate() over ' + RATE_INTERVAL + ').';

  const panels = [];
  for (const p of dash.panels || []) {
    panels.push(p);
    for (const q of p.panels || []) {
      panels.push(q);
    }
  }

  for (const p of panels) {
    const g = p.gridPos;
    const left = g.x * cw;
    const top = g.y * (CELL + GAP);
    const w = g.w * cw - GAP;
    const h = g.h * CELL + (g.h - 1) * GAP;
    bottom = Math.max(bottom, top + h);
    if (p.type === 'row') {
      el('div', { class: 'row', style: 'left:' + left + 'px;top:' + top
                                       + 'px' }, grid, p.title);
      continue;
    }
    const box = el('div', { class: 'panel',
                            style: 'left:' + left + 'px;top:' + top
                                   + 'px;width:' + w + 'px;height:' + h
                                   + 'px' }, grid);
    el('h2', {}, box, p.title);
    const fc = (p.fieldConfig && p.fieldConfig.defaults) || {};
    const unit = fc.unit;
    let series;
    try {
      if (!PANEL_TYPES.includes(p.type)) {
        throw new Unsupported('panel type ' + p.type);
      }
      series = [];
      for (const t of p.targets || []) {
        series.push(...runTarget(t, store));
      }
    } catch (e) {
      if (!(e instanceof Unsupported)) {
        throw e;
      }
      notRendered(box, e.message);
      continue;
    }
    seriesColors(series, p.fieldConfig && p.fieldConfig.overrides);
    if (p.type === 'timeseries') {
      timeseries(box, w - 2, h - 2, series, store, unit, t0);
    } else if (p.type === 'state-timeline') {
      stateTimeline(box, w - 2, h - 2, series, store, fc, t0);
    } else if (p.type === 'gauge') {
      gauge(box, w - 2, h - 2, series, fc, unit);
    } else {
      stat(box, w - 2, h - 2, series, fc, unit);
    }
  }
  grid.style.height = bottom + 'px';
  document.body.setAttribute('data-rendered', 'yes');
}

// in the page: draw; under node (t/tools/dashboard-eval.js): the evaluator
if (typeof module !== 'undefined' && module.exports) {
  module.exports = { parse: parse, buildStore: buildStore,
                     runTarget: runTarget, Unsupported: Unsupported,
                     PANEL_TYPES: PANEL_TYPES };
} else {
  render();
}

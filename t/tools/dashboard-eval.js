// The evaluator of the dashboard picture (dashboard.js) under node, for
// t/062-dashboards.t: every panel of a dashboard over a set of scrapes.
//
//   node t/tools/dashboard-eval.js DASHBOARD.json SCRAPES.json
//
// SCRAPES.json: [{"t": <epoch seconds>, "text": <a /metrics scrape>}, ...]
// Prints a JSON array, one entry per panel (rows excluded):
//   {"title", "type", "error": null or why it would say "not rendered",
//    "series": [{"name", "last": <last value or null>, "max"}]}

'use strict';

const fs = require('fs');
const d = require('./dashboard.js');

const dash = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const store = d.buildStore(JSON.parse(fs.readFileSync(process.argv[3],
                                                      'utf8')));
const out = [];

for (const p of (dash.panels || []).flatMap((x) => [x, ...(x.panels || [])])) {
  if (p.type === 'row') {
    continue;
  }
  const r = { title: p.title, type: p.type, error: null, series: [] };
  try {
    if (!d.PANEL_TYPES.includes(p.type)) {
      throw new d.Unsupported('panel type ' + p.type);
    }
    for (const t of p.targets || []) {
      for (const s of d.runTarget(t, store)) {
        const vs = s.pts.filter((v) => v !== null);
        r.series.push({ name: s.name,
                        last: s.pts[s.pts.length - 1],
                        max: vs.length ? Math.max(...vs) : null });
      }
    }
  } catch (e) {
    if (!(e instanceof d.Unsupported)) {
      throw e;
    }
    r.error = e.message;
  }
  out.push(r);
}

process.stdout.write(JSON.stringify(out) + '\n');

// `skiff bench --html FILE`: one self-contained page (uPlot and its CSS
// inlined from node_modules, the figures as JSON), so the file can be mailed
// or opened offline: the summary table, a latency histogram and req/s over
// time, with the direct run beside the router's when there is one.

import { readFileSync } from 'node:fs';
import type { RunStats } from './loadrun';

export interface BenchReport {
  app: string;
  path: string;
  connections: number;
  duration: number;
  /** ISO time the run began. */
  started: string;
  router: RunStats;
  direct?: RunStats & { instance: number };
}

function uplotAsset(file: string): string {
  return readFileSync(require.resolve(`uplot/dist/${file}`), 'utf8');
}

/** Text for HTML: the report holds names and URLs the user chose. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** JSON inside <script>: no `</script>` or `<!--` can end it early. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

export function renderHtmlReport(report: BenchReport, summaryTable: string): string {
  const title = `skiff bench ${report.app}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>${uplotAsset('uPlot.min.css')}</style>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
.chart { margin-bottom: 2em; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(`${report.connections} connections for ${report.duration} s on ${report.path}, started ${report.started}`)}</p>
<pre id="summary">${escapeHtml(summaryTable)}</pre>
<h2>Latency histogram</h2>
<div id="histogram" class="chart"></div>
<h2>Requests per second</h2>
<div id="timeline" class="chart"></div>
<script>${uplotAsset('uPlot.iife.min.js')}</script>
<script>
const REPORT = ${scriptJson(report)};
${CHARTS}
</script>
</body>
</html>
`;
}

// Plain browser JavaScript: it runs in the page, not in Node.
const CHARTS = String.raw`
(function () {
  const runs = [['router', REPORT.router, '#1f77b4']];
  if (REPORT.direct) runs.push(['direct (instance ' + REPORT.direct.instance + ')', REPORT.direct, '#ff7f0e']);
  const width = Math.min(1000, document.body.clientWidth || 800);

  // Histogram: buckets from the first to the last with a response, bars side by side.
  const bounds = REPORT.router.histogram.bounds_ms;
  let first = Infinity, last = -1;
  for (const [, run] of runs) run.histogram.counts.forEach((n, i) => { if (n > 0) { first = Math.min(first, i); last = Math.max(last, i); } });
  if (last < 0) { first = 0; last = 0; }
  const label = (i) => i < bounds.length ? '\u2264' + bounds[i] + ' ms' : '>' + bounds[bounds.length - 1] + ' ms';
  const xs = [];
  for (let i = first; i <= last; i++) xs.push(i);
  // Overlapping, half transparent: the router's and the direct run's shapes compare at a glance.
  const bars = uPlot.paths.bars({ size: [0.8, 60] });
  new uPlot({
    width, height: 320,
    scales: { x: { time: false, range: [first - 0.5, last + 0.5] } },
    axes: [
      { values: (u, splits) => splits.map((i) => Number.isInteger(i) && i >= first && i <= last ? label(i) : ''), space: 70 },
      { label: 'responses', size: 70 },
    ],
    series: [{ label: 'latency' }].concat(runs.map(([name, , color]) => ({
      label: name, stroke: color, fill: color + '99', paths: bars,
      value: (u, v) => v == null ? '-' : String(v),
    }))),
  }, [xs].concat(runs.map(([, run]) => xs.map((i) => run.histogram.counts[i]))), document.getElementById('histogram'));

  // Requests per second over the run.
  const seconds = Math.max(...runs.map(([, run]) => run.timeline.length));
  const ts = Array.from({ length: seconds }, (_, i) => i + 1);
  new uPlot({
    width, height: 320,
    scales: { x: { time: false }, y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] } },
    axes: [{ label: 'second of the run', incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600] }, { label: 'req/s', size: 70 }],
    series: [{ label: 'second' }].concat(runs.map(([name, , color]) => ({ label: name, stroke: color, width: 2 }))),
  }, [ts].concat(runs.map(([, run]) => ts.map((s) => run.timeline[s - 1] ? run.timeline[s - 1].requests : null))), document.getElementById('timeline'));
  document.body.dataset.charts = 'drawn';
})();
`;

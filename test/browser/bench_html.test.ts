// `skiff bench --html FILE` on a real platform, the file opened in headless
// Chromium (Debian's /usr/bin/chromium through playwright-core): no console
// error, no request leaves the file (it is self-contained), and the latency
// histogram and req/s chart are drawn (canvases with paint on them).

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import t from 'tap';
import { finish, spawnSkiff, tempHome } from '../cli_harness';
import { eventually } from '../harness';
import { platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';

const CHROMIUM = '/usr/bin/chromium';
const LOAD_APP = join(__dirname, '..', 'fixtures', 'load-app');

t.test('the --html report opens in Chromium without console errors and shows the histogram', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed` }, async (t) => {
  const dataDir = platformDataDir(t, 'skiff-bench-html-');
  const home = tempHome(t);
  const out = mkdtempSync(join(tmpdir(), 'skiff-bench-report-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const ports = await platformPorts();
  const platform = startSkiffTree(t, upArgs(dataDir, ports), home, 300_000);
  await eventually(() => platform.out().includes('router: '), 'skiff up to print its router line', 90_000);
  const pushed = await finish(spawnSkiff(['push', LOAD_APP, '--memory', '64M'], home), 180_000);
  t.equal(pushed.code, 0, `push load-app (${pushed.stderr.trim().split('\n').slice(-2).join(' | ')})`);

  const file = join(out, 'report.html');
  const run = await finish(spawnSkiff(['bench', 'load-app', '--duration', '2', '--connections', '2', '--compare-direct', '--html', file], home), 90_000);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stderr, `report written to ${file}`);
  const html = readFileSync(file, 'utf8');
  t.notMatch(html, /<script[^>]+src=|<link[^>]+href=/i, 'nothing loaded from elsewhere');

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('request', (request) => {
    if (!request.url().startsWith('file:')) requests.push(request.url());
  });
  await page.goto(`file://${file}`);
  // Page code as text: this file is compiled without the DOM's types.
  await page.waitForFunction("document.body.dataset.charts === 'drawn'", undefined, { timeout: 20_000 });
  t.same(errors, [], 'no console errors');
  t.same(requests, [], 'no request left the file');
  t.match(await page.textContent('h1'), 'skiff bench load-app');
  t.match(await page.textContent('#summary'), /TARGET\s+REQ\/S/);

  // A drawn chart: a canvas of real size in each chart, and the histogram's with painted pixels.
  const painted = (await page.evaluate(`(() => {
    const canvas = document.querySelector('#histogram canvas');
    if (canvas === null) return { width: 0, height: 0, painted: 0 };
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
    return { width: canvas.width, height: canvas.height, painted };
  })()`)) as { width: number; height: number; painted: number };
  t.ok(painted.width > 100 && painted.height > 100, `the histogram has a canvas (${painted.width}x${painted.height})`);
  t.ok(painted.painted > 1000, `bars are painted on it (${painted.painted} pixels)`);
  t.equal(await page.locator('#timeline canvas').count(), 1, 'the req/s chart has its canvas');
  t.match(await page.textContent('#histogram'), /router/, "the histogram's legend names the router");
  t.match(await page.textContent('#histogram'), /direct \(instance 0\)/, 'and the direct run');
});

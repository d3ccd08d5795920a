// The web console in a real browser (Debian's chromium, headless, driven by
// playwright-core), on `skiff up`, through the router at
// http://api.localhost:<router port>/console/: log in, see a pushed app,
// generate traffic and see its request chart move, scale it from the page
// and see the instances come, stop it and see the state change without a
// reload, with no console errors; the token lives in an HttpOnly,
// SameSite=Strict cookie of the API host only; the page keeps working when
// the controller restarts. Saves docs/console.png for the README.
// Run with `npm run test:browser` (left out of `npm test`).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { chromium, type BrowserServer, type Page } from 'playwright-core';
import { finish, spawnSkiff, tempHome } from '../cli_harness';
import { eventually, isAlive, sleep, type TeardownHost } from '../harness';
import { descendants, platformDataDir, platformPorts, startSkiffTree, upArgs } from '../platform_harness';
import { get } from '../router_harness';

const CHROMIUM = process.env.SKIFF_CHROMIUM ?? '/usr/bin/chromium';
const HELLO = join(__dirname, '..', '..', 'examples', 'hello-node');
const SCREENSHOT = join(__dirname, '..', '..', 'docs', 'console.png');

async function launch(t: TeardownHost): Promise<BrowserServer> {
  // The browser and its helpers are ended by pid, whatever happens to the test.
  const server = await chromium.launchServer({
    executablePath: CHROMIUM,
    headless: true,
    // As root (CI), chromium refuses to start with its sandbox.
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
  const pid = server.process().pid!;
  t.teardown(async () => {
    const family = [pid, ...descendants(pid)];
    await server.close().catch(() => {});
    for (const p of family) if (isAlive(p)) process.kill(p, 'SIGKILL');
  });
  return server;
}

/** The text of a cell of the app's row in the apps table. */
const cell = (page: Page, app: string, cls: string) => page.locator(`#apps tr[data-app="${app}"] td.${cls}`).innerText();

t.test('the console: login, live charts, scale, stop, controller restart', { skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM} (apt-get install chromium)` }, async (t) => {
  const dataDir = platformDataDir(t, 'skiff-console-');
  const home = tempHome(t);
  const ports = await platformPorts();
  const platform = startSkiffTree(t, upArgs(dataDir, ports), home, 600_000);
  await eventually(() => /^router: http/m.test(platform.out()), 'skiff up to print its router line', 60_000);
  const pushed = await finish(spawnSkiff(['push', HELLO, '--name', 'hello'], home), 120_000);
  t.equal(pushed.code, 0, pushed.stderr);
  const admin = JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as { email: string; password: string };

  const server = await launch(t);
  const browser = await chromium.connect(server.wsEndpoint());
  t.teardown(() => browser.close().catch(() => {}));
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  const base = `http://api.localhost:${ports.router}`;

  // Log in.
  await page.goto(`${base}/console/`);
  await page.fill('input[name=email]', admin.email);
  await page.fill('input[name=password]', 'not the password');
  await page.click('button[type=submit]');
  await page.locator('[role=alert]').waitFor({ timeout: 15_000 });
  t.match(await page.locator('[role=alert]').innerText(), /wrong email or password/, 'a wrong password says so');
  errors.length = 0; // the refused login is a 401 the browser reports as a failed resource
  await page.fill('input[name=password]', admin.password);
  await page.click('button[type=submit]');
  await page.locator('#who').waitFor({ timeout: 15_000 });
  t.equal(await page.locator('#who').innerText(), admin.email);

  const cookies = await context.cookies(base);
  const token = cookies.find((c) => c.name === 'skiff_token');
  t.ok(token, 'the token is in a cookie');
  t.equal(token?.httpOnly, true, 'HttpOnly');
  t.equal(token?.sameSite, 'Strict', 'SameSite=Strict');
  t.equal(token?.domain, 'api.localhost', 'for the API host alone');
  t.equal(await page.evaluate('document.cookie'), '', 'the page\'s scripts cannot read it');
  t.equal((await context.cookies(`http://hello.localhost:${ports.router}/`)).length, 0, 'an app on *.localhost is not sent it');

  // The pushed app, live.
  const row = page.locator('#apps tr[data-app="hello"]');
  await row.waitFor({ timeout: 15_000 });
  await eventually(async () => (await cell(page, 'hello', 'state')) === 'STARTED' && (await cell(page, 'hello', 'running')) === '1/1', 'hello STARTED 1/1', 20_000);
  await page.evaluate('window.marker = 42');
  await row.click();
  await page.locator('#app-detail[data-app="hello"]').waitFor();

  // Traffic moves the request chart.
  let sending = true;
  const traffic = (async () => {
    // Steady, not flat out: the machine is shared with the platform under test.
    while (sending) {
      await Promise.all([1, 2, 3, 4].map(() => get({ port: ports.router, host: 'hello.localhost' }).catch(() => undefined)));
      await sleep(20);
    }
  })();
  t.teardown(async () => {
    sending = false;
    await traffic;
  });
  await eventually(async () => Number(await page.locator('#chart-rate').getAttribute('data-last')) > 1, 'the request chart to show the traffic', 30_000);
  const pointsBefore = Number(await page.locator('#chart-rate').getAttribute('data-points'));
  await eventually(async () => Number(await page.locator('#chart-rate').getAttribute('data-points')) > pointsBefore, 'the chart to move on', 15_000);
  t.ok(Number(await cell(page, 'hello', 'rate')) > 1, 'the apps table shows the rate');

  // Scale from the page.
  await page.fill('#instances', '2');
  await page.click('#scale');
  await eventually(async () => (await cell(page, 'hello', 'running')) === '2/2', 'two instances running', 60_000);
  await eventually(async () => (await page.locator('#instance-table tr.instance').count()) === 2, 'both instances with their usage', 20_000);
  await sleep(6000); // a few more points on the charts for the picture
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  t.ok(existsSync(SCREENSHOT), `screenshot saved to ${SCREENSHOT}`);

  // Stop, without a reload.
  sending = false;
  await traffic;
  await page.click('#stop');
  await eventually(async () => (await cell(page, 'hello', 'state')) === 'STOPPED', 'the state to change to STOPPED', 30_000);
  t.equal(await page.locator('#detail-state').innerText(), 'STOPPED');
  t.equal(await page.evaluate('window.marker'), 42, 'no reload happened');
  t.same(errors, [], 'no console errors');

  // The controller restarts (killed: its supervisor starts another); the page comes back by itself.
  const controller = descendants(platform.pid).find((pid) => {
    try {
      return / controller( |$)/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '));
    } catch {
      return false;
    }
  });
  t.ok(controller, 'found the controller process');
  process.kill(controller!, 'SIGKILL');
  await eventually(async () => (await page.locator('#live').innerText()) === 'reconnecting', 'the page to notice', 20_000);
  await eventually(async () => (await page.locator('#live').innerText()) === 'live', 'the page to reconnect to the new controller', 90_000);
  await page.click('#start');
  await eventually(async () => (await cell(page, 'hello', 'state')) === 'STARTED', 'start works after the restart', 60_000);
  t.equal(await page.evaluate('window.marker'), 42, 'still the same page');
  const unexpected = errors.filter((e) => !/Failed to load resource|EventSource|net::ERR_/.test(e));
  t.same(unexpected, [], 'no errors but the failed requests while the controller was away');

  await browser.close();
  t.equal(await platform.stop(), 0);
});

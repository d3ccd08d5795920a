// The web console in a real browser (Debian's chromium, headless, driven by
// playwright-core), on `skiff up`, through the router at
// http://api.localhost:<router port>/console/: log in, see a pushed app,
// generate traffic and see its request chart move, scale it from the page
// and see the instances come, stop it and see the state change without a
// reload, with no console errors; the token lives in an HttpOnly,
// SameSite=Strict cookie of the API host only; an admin sees the nodes,
// users and config store (a change showing without a reload), a user who
// is not an admin does not; the page keeps working when the controller
// restarts. Saves docs/console.png for the README.
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
const VIEWER_PASSWORD = 'viewer-password-1234';

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

/** The rows of a table of the page as objects, by its column headings. */
async function tableRows(page: Page, id: string): Promise<Array<Record<string, string>>> {
  return page.locator(`table#${id}`).evaluate((table) => {
    const headings = [...table.querySelectorAll('thead th')].map((th) => th.textContent ?? '');
    return [...table.querySelectorAll('tbody tr')].map((tr) => Object.fromEntries([...tr.querySelectorAll('td')].map((td, i) => [headings[i] ?? String(i), td.textContent ?? ''])));
  });
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
  const setMaxJobs = await finish(spawnSkiff(['config', 'set', 'stager.max_jobs', '3'], home), 30_000);
  t.equal(setMaxJobs.code, 0, setMaxJobs.stderr);
  // A user who is not an admin (through the API: a password has no place on a command line).
  const adminToken = (await (await fetch(`http://127.0.0.1:${ports.api}/users/${encodeURIComponent(admin.email)}/tokens`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ password: admin.password }),
  })).json() as { token: string }).token;
  const added = await fetch(`http://127.0.0.1:${ports.api}/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ email: 'viewer@skiff.local', password: VIEWER_PASSWORD, admin: false }),
  });
  t.equal(added.status, 201, 'a second user added');

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

  // The admin's part: nodes, users and the config store, kept current without a reload.
  await page.click('#tab-admin');
  const nodeName = /^node: (\S+)/m.exec(platform.out())?.[1];
  await eventually(async () => (await tableRows(page, 'nodes')).some((n) => n.node === nodeName && n.state === 'running'), `node ${nodeName} running in the nodes table`, 20_000);
  const node = (await tableRows(page, 'nodes')).find((n) => n.node === nodeName)!;
  for (const role of ['router', 'controller', 'stager', 'dea', 'health']) t.match(node.roles, role, `the node's roles show ${role}`);
  const users = await tableRows(page, 'users');
  t.same(users.filter((u) => u.email === admin.email).map((u) => u.admin), ['true'], 'the admin among the users, as an admin');
  t.same(users.find((u) => u.email === 'viewer@skiff.local')?.admin, 'false', 'the other user, not an admin');
  const setting = (key: string) => async () => (await tableRows(page, 'config')).find((c) => c.key === key);
  t.same(await setting('stager.max_jobs')().then((c) => c && { value: c.value, set: c.set }), { value: '3', set: 'true' }, 'a stored setting with its value');
  t.equal((await setting('stager.command_timeout')())?.set, 'false', 'a default one, unset');
  const changed = await finish(spawnSkiff(['config', 'set', 'stager.command_timeout', '600'], home), 30_000);
  t.equal(changed.code, 0, changed.stderr);
  await eventually(async () => (await setting('stager.command_timeout')())?.value === '600', 'the changed setting to show without a reload', 30_000);
  await page.click('#tab-apps');

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

  // A user who is not an admin sees the apps, not the cluster, and the API refuses it the admin's reads.
  const viewer = await (await browser.newContext()).newPage();
  await viewer.goto(`${base}/console/`);
  await viewer.fill('input[name=email]', 'viewer@skiff.local');
  await viewer.fill('input[name=password]', VIEWER_PASSWORD);
  await viewer.click('button[type=submit]');
  await viewer.locator('#who').waitFor({ timeout: 15_000 });
  await viewer.locator('#apps').waitFor({ timeout: 15_000 });
  t.equal(await viewer.locator('#tab-admin').count(), 0, 'no Cluster tab for a user who is not an admin');
  t.equal(await viewer.evaluate(async () => (await fetch('/nodes')).status), 403, 'and /nodes refuses it');

  await browser.close();
  t.equal(await platform.stop(), 0);
});

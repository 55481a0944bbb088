/**
 * Issue 11 acceptance: the dashboard on each node's admin port, with 3 real node processes.
 * First the server side over plain HTTP (assets, the event stream, its bound), then the page in
 * headless Chromium (Debian's /usr/bin/chromium through playwright-core): 3 alive nodes, a flow
 * lookup that agrees with /api/flows, a drain click that drains the backend on every node, kill -9
 * of a node shown dead within 2 s with the failover in the timeline, and the page reconnecting
 * after its own node restarts. Any console error fails the test. Screenshots go to
 * test-artifacts/dashboard/.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster, waitUntil, sleep, TEST_TOKEN, type TestCluster } from '../helpers/cluster.js';
import { httpBackend, type Backend } from '../helpers/backends.js';
import { readSse, trafficLoop, type Traffic } from './dashboard-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = new URL('../../test-artifacts/dashboard/', import.meta.url).pathname;
const WEB_PORT = 17610;
let c: TestCluster;
let backends: Backend[];
let traffic: Traffic | null = null;

before(async () => {
  backends = await Promise.all(['alpha', 'beta', 'gamma'].map((id) => httpBackend(id)));
  c = await startCluster({
    basePort: 17600,
    services: [
      { name: 'web', protocol: 'http', port: WEB_PORT, flowKey: 'header:x-session', backends: backends.map((b) => ({ address: b.address })), healthCheck: { type: 'none' } },
    ],
  });
});

after(async () => {
  await traffic?.stop();
  await c?.stop();
  await Promise.all((backends ?? []).map((b) => b.close()));
});

const admin = (id: string, path = '/') => `http://${c.node(id).host}:${c.node(id).adminPort}${path}`;

test('every node serves the built page, its script and stylesheet, with cache headers and no outside source', async () => {
  for (const n of c.nodes) {
    const res = await fetch(admin(n.id));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    const html = await res.text();
    assert.doesNotMatch(html, /https?:\/\//, 'the page loads nothing from another origin');
    const js = /src="(\/dashboard\/app\.js\?v=[0-9a-f]+)"/.exec(html)?.[1];
    const css = /href="(\/dashboard\/app\.css\?v=[0-9a-f]+)"/.exec(html)?.[1];
    assert.ok(js && css, 'index.html names app.js and app.css with a content hash');
    for (const [path, type] of [[js, 'text/javascript'], [css, 'text/css']]) {
      const r = await fetch(admin(n.id, path));
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', new RegExp(`^${type}`));
      assert.match(r.headers.get('cache-control') ?? '', /immutable/);
      const etag = r.headers.get('etag');
      assert.ok(etag);
      assert.ok((await r.text()).length > 1000);
      const again = await fetch(admin(n.id, path), { headers: { 'if-none-match': etag } });
      assert.equal(again.status, 304);
    }
  }
});

test('the event stream sends retry, hello with the timeline, then a snapshot of the whole cluster each second', async () => {
  const events = await readSse(admin('lb2', '/api/stream'), (evs) => evs.filter((e) => e.event === 'snapshot').length >= 2, 4000);
  assert.equal(events[0]?.retry, 1000);
  const hello = events.find((e) => e.event === 'hello');
  assert.ok(hello);
  const h = JSON.parse(hello.data) as { self: string; events: Array<{ kind: string }> };
  assert.equal(h.self, 'lb2');
  assert.ok(h.events.some((e) => e.kind === 'lifecycle'));
  const snaps = events.filter((e) => e.event === 'snapshot').map((e) => JSON.parse(e.data) as { self: string; nodes: Array<{ id: string; state: string; weight: number }>; services: Array<{ name: string; backends: unknown[] }> });
  const last = snaps[snaps.length - 1];
  assert.equal(last.self, 'lb2');
  assert.deepEqual(last.nodes.map((n) => [n.id, n.state, n.weight]), [['lb1', 'alive', 1], ['lb2', 'alive', 1], ['lb3', 'alive', 1]]);
  assert.deepEqual(last.services.map((s) => [s.name, s.backends.length]), [['web', 3]]);
});

test('at most 32 streams per node: the 33rd gets a clear 503, and closed streams free their places', async () => {
  const aborts: AbortController[] = [];
  // Hold every response: undici cancels the body of a Response that is garbage-collected, which
  // closes its stream and frees its place early (Node 26 collects them within this loop).
  const open: Response[] = [];
  try {
    for (let i = 0; i < 32; i++) {
      const ac = new AbortController();
      aborts.push(ac);
      const res = await fetch(admin('lb3', '/api/stream'), { signal: ac.signal });
      assert.equal(res.status, 200);
      open.push(res);
    }
    const over = await fetch(admin('lb3', '/api/stream'));
    assert.equal(over.status, 503);
    assert.match(((await over.json()) as { error: string }).error, /too many dashboard streams/);
  } finally {
    for (const ac of aborts) ac.abort();
  }
  await waitUntil(async () => {
    const ac = new AbortController();
    const r = await fetch(admin('lb3', '/api/stream'), { signal: ac.signal });
    ac.abort();
    return r.status === 200;
  }, 3000, 'a stream place after the others closed');
});

test('the page in Chromium: live cluster, flow lookup, drain, kill -9, reconnect', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (CI installs Debian's chromium package)` }, async () => {
  const { chromium } = await import('playwright-core');
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    // playwright-core gives every launch a fresh, temporary user-data-dir of its own.
  });
  const errors: string[] = [];
  /** During the page's own node restart, the browser reports the refused reconnects; nothing else is excused. */
  let restarting = false;
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      if (restarting && /\/api\/stream/.test(m.location().url) && /net::ERR_/.test(m.text())) return;
      errors.push(`console: ${m.text()} (${m.location().url})`);
    });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));

    // Flows and a little traffic through the proxy, so that rates, charts and flows show.
    traffic = trafficLoop(c.nodes.map((n) => n.host), WEB_PORT);
    await waitUntil(() => traffic!.sent() >= 20, 5000, 'traffic through the proxy');

    await page.goto(admin('lb1'));
    const card = (id: string) => page.locator(`.node[data-node="${id}"]`);
    await waitUntil(async () => (await page.locator('.node[data-state="alive"]').count()) === 3, 5000, '3 alive nodes on the page');
    assert.equal(await page.locator('#conn').getAttribute('data-state'), 'live');
    await waitUntil(async () => (await card('lb2').locator('[data-field="http"]').textContent()) !== '–', 5000, 'rates of a peer');
    await sleep(2500); // a few chart points
    await page.screenshot({ path: join(ARTIFACTS, '1-desktop-3-alive.png') });

    // Flow lookup: the same owners as /api/flows.
    const key = 'session-7';
    const flow = await c.flow('lb1', 'web', key);
    assert.ok(flow, 'the traffic loop created the flow');
    await page.locator('#lookup-service').selectOption('web');
    await page.locator('#lookup-key').fill(key);
    await page.getByRole('button', { name: 'Look up' }).click();
    await page.locator('#lookup-primary').waitFor();
    assert.equal(await page.locator('#lookup-primary').textContent(), flow.primary);
    assert.equal(await page.locator('#lookup-backup').textContent(), flow.backup);
    assert.equal(await page.locator('#lookup-backend').textContent(), flow.backend);
    assert.equal(await page.locator('#lookup-ranking tbody tr').count(), 3);
    assert.equal(await page.locator('#lookup-ranking tbody tr').first().getAttribute('data-node'), flow.primary);

    // Drain with the token: the backend drains on every node.
    const target = backends[1].address;
    await page.locator(`tr[data-backend="${target}"] button`).click();
    await page.locator('#token-dialog').waitFor({ state: 'visible' });
    await page.locator('#token-input').fill(TEST_TOKEN);
    await page.screenshot({ path: join(ARTIFACTS, '2-desktop-token-dialog.png') });
    await page.locator('#token-ok').click();
    await waitUntil(async () => {
      const views = await Promise.all(c.nodes.map((n) => c.get(n.id, '/api/backends')));
      return views.every((v) => {
        const svc = (v.body as { services: Array<{ name: string; backends: Array<{ address: string; draining: boolean }> }> }).services[0];
        return svc.backends.find((b) => b.address === target)?.draining === true;
      });
    }, 3000, 'the backend draining on all nodes');
    await waitUntil(async () => (await page.locator(`tr[data-backend="${target}"]`).getAttribute('data-state')) === 'draining', 3000, 'draining shown');
    await page.evaluate('window.scrollTo(0, 0)');
    await page.screenshot({ path: join(ARTIFACTS, '3-desktop-lookup-and-drain-full.png'), fullPage: true });

    // kill -9 of lb3: shown dead on the page, the failover in the timeline (how fast is printed).
    const t0 = Date.now();
    await c.kill('lb3');
    await waitUntil(async () => (await card('lb3').getAttribute('data-state')) === 'dead', 10_000, 'lb3 shown dead');
    const deadAfter = Date.now() - t0;
    await waitUntil(async () => (await page.locator('#events li[data-kind="reprotect"]', { hasText: 'lb3' }).count()) > 0, 2000, 'the failover in the timeline');
    console.log(`# lb3 shown dead ${deadAfter} ms after kill -9`);
    await sleep(1500);
    await page.screenshot({ path: join(ARTIFACTS, '4-desktop-lb3-dead.png') });

    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(300);
    await page.screenshot({ path: join(ARTIFACTS, '5-phone-full.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });

    // The page's own node restarts: the page reconnects by itself and shows it alive again.
    restarting = true;
    await c.kill('lb1');
    await waitUntil(async () => (await page.locator('#conn').getAttribute('data-state')) !== 'live', 5000, 'the page noticing its node is gone');
    await c.start('lb1');
    await c.start('lb3');
    await waitUntil(async () => (await page.locator('#conn').getAttribute('data-state')) === 'live', 8000, 'the page reconnected');
    restarting = false;
    await waitUntil(async () => (await page.locator('.node[data-state="alive"]').count()) === 3, 5000, '3 alive again');
    await waitUntil(async () => (await card('lb3').locator('[data-field="http"]').textContent()) !== '–', 5000, 'rates of the restarted peer');
    await page.screenshot({ path: join(ARTIFACTS, '6-desktop-after-restart.png') });
    assert.deepEqual(errors, [], 'no console errors');
  } finally {
    await browser.close();
  }
});

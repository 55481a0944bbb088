import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RouteMatcher, covers, type MatchRequest, type RouteMatch } from '../../src/routes/matcher.js';
import { normalizeHost, normalizeTarget, removeDotSegments } from '../../src/routes/normalize.js';
import { prng } from '../helpers/prng.js';

function req(host: string, path: string, method = 'GET', headers: Record<string, string> = {}): MatchRequest {
  return { host: normalizeHost(host), path: normalizeTarget(path).path, method, header: (n) => headers[n] };
}

/** The specification: the first route in order whose every condition holds (no index). */
function linear(routes: readonly RouteMatch[], r: MatchRequest): number {
  return routes.findIndex((m) => {
    if (m.host !== undefined) {
      const h = m.host.toLowerCase();
      if (h.startsWith('*.')) {
        const dot = r.host.indexOf('.');
        if (dot <= 0 || r.host.slice(dot) !== h.slice(1)) return false;
      } else if (h !== r.host) return false;
    }
    if (m.pathPrefix !== undefined && !r.path.startsWith(m.pathPrefix)) return false;
    if (m.method !== undefined && m.method !== r.method) return false;
    for (const [k, v] of Object.entries(m.header ?? {})) if (r.header(k.toLowerCase()) !== v) return false;
    return true;
  });
}

test('golden cases: host exact and wildcard, prefixes, method, headers, first match wins', () => {
  const routes: RouteMatch[] = [
    { host: 'api.test', pathPrefix: '/v1/' }, // 0
    { pathPrefix: '/static/' }, // 1
    { host: '*.shop.test' }, // 2
    { host: 'api.test', method: 'POST' }, // 3
    { header: { 'X-Canary': 'yes' } }, // 4
    { host: 'api.test' }, // 5
  ];
  const m = new RouteMatcher(routes);
  const cases: Array<[MatchRequest, number]> = [
    [req('api.test', '/v1/users'), 0],
    [req('API.TEST.', '/v1/users'), 0], // case and trailing dot
    [req('api.test:8080', '/v1/users'), 0], // port
    [req('api.test', '/v2/users'), 5],
    [req('api.test', '/v2/users', 'POST'), 3],
    [req('api.test', '/static/a.css'), 1], // the any-host route comes first in order
    [req('other.test', '/static/a.css'), 1],
    [req('eu.shop.test', '/cart'), 2],
    [req('a.eu.shop.test', '/cart'), -1], // one label only
    [req('shop.test', '/cart'), -1],
    [req('other.test', '/x', 'GET', { 'x-canary': 'yes' }), 4],
    [req('other.test', '/x', 'GET', { 'x-canary': 'no' }), -1],
    [req('', '/x'), -1], // no Host (HTTP/1.0): only host-less routes
    [req('', '/static/x'), 1],
    [req('api.test', '/v1/../static/x'), 1], // dot segments resolved before matching
    [req('api.test', '/%76%31/users'), 0], // unreserved percent-encoding decoded
    [req('api.test', '/v1%2Fusers'), 5], // an encoded slash is data, not a separator
  ];
  for (const [r, want] of cases) assert.equal(m.match(r), want, `${r.method} ${r.host} ${r.path}`);
});

test('absolute-form targets: the authority wins over Host', () => {
  assert.deepEqual(normalizeTarget('http://API.test:80/v1/x?q=1'), { host: 'api.test', path: '/v1/x' });
  assert.deepEqual(normalizeTarget('https://user@h.test'), { host: 'h.test', path: '/' });
  assert.deepEqual(normalizeTarget('/a/./b/../c?x=/../'), { host: null, path: '/a/c' });
  assert.equal(removeDotSegments('/../../a'), '/a');
  assert.equal(removeDotSegments('/a/b/..'), '/a/');
  assert.equal(normalizeHost('[::1]:8080'), '[::1]');
});

test('the index agrees with the linear specification on 20k seeded random requests over 300 random routes', () => {
  const rnd = prng(2026);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)];
  const hosts = ['a.test', 'b.test', '*.c.test', 'x.c.test', 'y.c.test'];
  const prefixes = ['/', '/a', '/a/', '/a/b', '/b/', '/ab', '/a/b/c'];
  const routes: RouteMatch[] = [];
  for (let i = 0; i < 300; i++) {
    const r: { host?: string; pathPrefix?: string; method?: string; header?: Record<string, string> } = {};
    if (rnd() < 0.7) r.host = pick(hosts);
    if (rnd() < 0.8) r.pathPrefix = pick(prefixes);
    if (rnd() < 0.2) r.method = pick(['GET', 'POST']);
    if (rnd() < 0.1) r.header = { 'x-v': pick(['1', '2']) };
    routes.push(r);
  }
  const m = new RouteMatcher(routes);
  for (let i = 0; i < 20_000; i++) {
    const host = pick(['a.test', 'b.test', 'x.c.test', 'z.c.test', 'q.test', '']);
    const path = pick(['/', '/a', '/a/b/c/d', '/ab', '/b/x', '/zzz', '/a/']);
    const r = req(host, path, pick(['GET', 'POST']), rnd() < 0.5 ? { 'x-v': pick(['1', '2']) } : {});
    assert.equal(m.match(r), linear(routes, r), `${r.method} ${host} ${path}`);
  }
});

test('covers: what makes a later route unreachable', () => {
  assert.equal(covers({}, { host: 'a.test', pathPrefix: '/x' }), true, 'a catch-all covers everything after it');
  assert.equal(covers({ pathPrefix: '/api/' }, { pathPrefix: '/api/v1/' }), true);
  assert.equal(covers({ pathPrefix: '/api/v1/' }, { pathPrefix: '/api/' }), false);
  assert.equal(covers({ host: '*.a.test' }, { host: 'x.a.test', pathPrefix: '/' }), true);
  assert.equal(covers({ host: '*.a.test' }, { host: 'x.y.a.test' }), false);
  assert.equal(covers({ host: 'x.a.test' }, { host: '*.a.test' }), false);
  assert.equal(covers({ method: 'GET' }, {}), false);
  assert.equal(covers({ header: { 'X-A': '1' } }, { header: { 'x-a': '1', 'x-b': '2' } }), true);
  assert.equal(covers({ header: { 'X-A': '1' } }, {}), false);
});

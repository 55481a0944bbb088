import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText, ConfigError, formatIssue } from '../../src/config/load.js';

const head = `
cluster:
  name: demo
  secret: "0123456789abcdef-secret"
  nodes: [{ id: lb1, host: 127.0.0.1 }]
services:
`;

const GOOD = `${head}  - name: web
    protocol: http
    port: 8080
    flowKey: header:x-session
    rateLimit: { requestsPerSecond: 100, burst: 20 }
    routes:
      - name: api
        match: { host: API.test., pathPrefix: /v1/ }
        backends: [{ address: 127.0.0.1:9001 }]
        policy: least-connections
        timeouts: { connectMs: 500 }
        requestHeaders: { set: { X-Route: api }, remove: [X-Debug] }
        rateLimit: { requestsPerSecond: 5, key: header:x-user }
      - name: static
        match: { pathPrefix: /static/ }
        backends: [{ address: 127.0.0.1:9002 }]
        flowKey: client-ip
      - name: old
        match: { host: old.test }
        redirect: { to: "https://new.test{path}", status: 308 }
    backends: [{ address: 127.0.0.1:9003 }]
`;

function problems(yaml: string): string[] {
  try {
    parseConfigText(yaml, 'test.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues.map(formatIssue);
  }
  return [];
}

test('a config with routes resolves every route with the service defaults filled in', () => {
  const c = parseConfigText(GOOD, 'test.yaml');
  const s = c.services[0];
  assert.deepEqual(s.routes.map((r) => r.flowService), ['web/api', 'web/static', 'web/old']);
  const [api, st, old] = s.routes;
  assert.deepEqual(api.match, { host: 'api.test', pathPrefix: '/v1/' });
  assert.equal(api.policy, 'least-connections');
  assert.equal(api.flowKey, 'header:x-session', 'flowKey from the service');
  assert.equal(api.timeouts.connectMs, 500);
  assert.equal(api.timeouts.requestMs, s.timeouts.requestMs, 'other timeouts from the service');
  assert.deepEqual(api.requestHeaders, { set: [['x-route', 'api']], add: [], remove: ['x-debug'] });
  assert.deepEqual(api.rateLimit, { requestsPerSecond: 5, burst: 5, key: 'header:x-user', maxKeys: 100_000 });
  assert.equal(st.flowKey, 'client-ip');
  assert.equal(st.policy, 'round-robin');
  assert.deepEqual(old.redirect, { to: 'https://new.test{path}', status: 308 });
  assert.deepEqual(old.backends, []);
  assert.deepEqual(s.rateLimit, { requestsPerSecond: 100, burst: 20, key: 'client-ip', maxKeys: 100_000 });
  assert.equal(s.backends.length, 1);
  assert.ok(Object.isFrozen(api.match));
});

test('an http service with routes may have no default backends; other services may not', () => {
  const onlyRoutes = `${head}  - name: web
    protocol: http
    port: 8080
    routes: [{ name: a, match: { pathPrefix: /a }, backends: [{ address: 127.0.0.1:9001 }] }]
`;
  assert.deepEqual(problems(onlyRoutes), []);
  assert.deepEqual(parseConfigText(onlyRoutes).services[0].backends, []);
  assert.deepEqual(problems(`${head}  - { name: t, protocol: tcp, port: 9 }\n`), ['services[0].backends: is required']);
});

const cases: Array<[string, string, string, string[]]> = [
  ['a route after a catch-all', '      - name: static\n        match: { pathPrefix: /static/ }', '      - name: all\n        match: {}\n        backends: [{ address: 127.0.0.1:9009 }]\n      - name: static\n        match: { pathPrefix: /static/ }', [
    'services[0].routes[2].match: unreachable: every request it matches is matched first by route "all" (routes[1])',
    'services[0].routes[3].match: unreachable: every request it matches is matched first by route "all" (routes[1])',
  ]],
  ['a narrower prefix after a wider one', 'match: { pathPrefix: /static/ }', 'match: { host: api.test, pathPrefix: /v1/users }', [
    'services[0].routes[1].match: unreachable: every request it matches is matched first by route "api" (routes[0])',
  ]],
  ['duplicate route names', 'name: static', 'name: api', ['services[0].routes[1].name: duplicate route name "api" (also routes[0].name)']],
  ['bad header name in a rule', 'X-Route: api', '"Bad Name": api', ['services[0].routes[0].requestHeaders.set.Bad Name: is not a valid header name']],
  ['a rule on a framing header', 'remove: [X-Debug]', 'remove: [Transfer-Encoding]', ['services[0].routes[0].requestHeaders.remove[0]: "Transfer-Encoding" is managed by the proxy and cannot be removed by a rule']],
  ['CRLF in a header value', 'X-Route: api', 'X-Route: "a\\r\\nInjected: 1"', ['services[0].routes[0].requestHeaders.set.X-Route: must not contain CR, LF or NUL']],
  ['a bad redirect target', 'to: "https://new.test{path}"', 'to: "javascript:alert(1)"', ['services[0].routes[2].redirect.to: must be an http or https URL, or a path starting with "/"']],
  ['a bad redirect status', 'status: 308', 'status: 200', ['services[0].routes[2].redirect.status: must be one of 301, 302, 303, 307, 308']],
  ['a redirect route with backends', '{ to: "https://new.test{path}", status: 308 }', '{ to: "/new" }\n        backends: [{ address: 127.0.0.1:9009 }]', ['services[0].routes[2].backends: a redirect route takes no backends']],
  ['a route without backends', '        backends: [{ address: 127.0.0.1:9002 }]\n', '', ['services[0].routes[1].backends: must list at least one backend (or set redirect)']],
  ['a bad host pattern', 'host: old.test', 'host: "a*b.test"', ['services[0].routes[2].match.host: must be a host name or "*.example.com"']],
  ['a path prefix without a slash', 'pathPrefix: /v1/', 'pathPrefix: v1', ['services[0].routes[0].match.pathPrefix: must start with "/"']],
  ['an unknown match key, with a suggestion', 'pathPrefix: /v1/ }', 'pathPrefix: /v1/, hots: x }', ['services[0].routes[0].match.hots: unknown key (did you mean "host"?)']],
  ['a bad rate-limit key', 'key: header:x-user', 'key: ip', ['services[0].routes[0].rateLimit.key: must be client-ip, header:NAME or cookie:NAME']],
  ['a zero rate', 'requestsPerSecond: 100', 'requestsPerSecond: 0', ['services[0].rateLimit.requestsPerSecond: must be a number from 0.001 to 10000000']],
  ['a bad route flowKey', 'flowKey: client-ip', 'flowKey: quic-cid', ['services[0].routes[1].flowKey: "quic-cid" is not allowed for protocol http (allowed: client-ip, connection, header:NAME, cookie:NAME)']],
  ['a duplicate backend in a route', 'backends: [{ address: 127.0.0.1:9001 }]', 'backends: [{ address: 127.0.0.1:9001 }, { address: 127.0.0.1:9001 }]', ['services[0].routes[0].backends[1].address: duplicate backend (also backends[0])']],
];

for (const [what, from, to, want] of cases) {
  test(`routes: ${what}`, () => {
    assert.ok(GOOD.includes(from), `fixture lacks ${from}`);
    assert.deepEqual(problems(GOOD.replace(from, to)), want);
  });
}

test('routes and limits are for http services only', () => {
  const yaml = `${head}  - name: t
    protocol: tcp
    port: 9
    backends: [{ address: 127.0.0.1:1 }]
    rateLimit: { requestsPerSecond: 1 }
    routes: []
`;
  assert.deepEqual(problems(yaml), ['services[0].routes: only allowed for protocol http', 'services[0].rateLimit: only allowed for protocol http']);
});

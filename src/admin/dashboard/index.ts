/**
 * The dashboard (docs/dashboard.md): `GET /` serves a single page built into dist/dashboard/ by the package
 * build (scripts/build-dashboard.mjs), `GET /api/stream` feeds it live over server-sent events, and
 * `GET /api/dashboard/counters` lets the node serving a page sample every other node's traffic.
 * The page's other calls (flow lookup, ranking, drain) use the admin API's existing routes.
 */
import { readFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { AdminReply, AdminServer } from '../server.js';
import type { NodeView } from '../../node/node-view.js';
import { DashboardStream, type StreamOptions } from './stream.js';
import { readCounters } from './sampler.js';
import type { Lookup } from './wire.js';

interface Asset {
  readonly body: string;
  readonly type: string;
  readonly etag: string;
  readonly cache: string;
}

/**
 * Where the built page lives: dist/dashboard/ next to the compiled server (dist/admin/dashboard/),
 * or the package's dist/ when this module runs from src/ (tests under tsx).
 */
function assetDir(): string | null {
  for (const rel of ['../../dashboard/', '../../../dist/dashboard/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  return null;
}

// The page and its script may load only from this origin: no CDN, no inline script or style.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function loadAssets(): Map<string, Asset> | null {
  const dir = assetDir();
  if (!dir) return null;
  const assets = new Map<string, Asset>();
  const add = (route: string, file: string, type: string, cache: string) => {
    const body = readFileSync(`${dir}${file}`, 'utf8');
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    assets.set(route, { body, type, etag, cache });
  };
  // The HTML names its script and stylesheet with a content hash (?v=…), so these may be cached
  // long; the HTML itself is revalidated on every load, which picks up a new build.
  add('/', 'index.html', 'text/html; charset=utf-8', 'no-cache');
  add('/dashboard/app.js', 'app.js', 'text/javascript; charset=utf-8', 'public, max-age=31536000, immutable');
  add('/dashboard/app.css', 'app.css', 'text/css; charset=utf-8', 'public, max-age=31536000, immutable');
  return assets;
}

function serve(asset: Asset, ifNoneMatch: string | undefined): AdminReply {
  const headers: Record<string, string> = {
    'cache-control': asset.cache,
    etag: asset.etag,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  };
  if (asset.type.startsWith('text/html')) {
    headers['content-security-policy'] = CSP;
    headers['x-frame-options'] = 'DENY';
  }
  if (ifNoneMatch === asset.etag) return { status: 304, text: '', contentType: asset.type, headers };
  return { status: 200, text: asset.body, contentType: asset.type, headers };
}

export function registerDashboard(node: NodeView, admin: AdminServer, opts: StreamOptions = {}): DashboardStream {
  // Read once at start: a page load never touches the disk.
  const assets = loadAssets();
  for (const route of ['/', '/dashboard/app.js', '/dashboard/app.css']) {
    admin.get(route, (req) => {
      const a = assets?.get(route);
      if (!a) {
        return { status: 503, text: 'the dashboard is not built: run `npm run build` in the tandem package\n', headers: { 'cache-control': 'no-store' } };
      }
      return serve(a, req.raw.headers['if-none-match']);
    });
  }
  const stream = new DashboardStream(node, opts);
  admin.get('/api/stream', (req, res) => stream.open(req, res));
  admin.get('/api/dashboard/counters', async () => ({ status: 200, json: await readCounters(node) }));
  // One call for the page's flow lookup, and 200 with flow: null when the key has no entry, so a
  // lookup of an unknown key is an answer, not a failed request in the browser's console.
  admin.get('/api/dashboard/lookup', (req) => {
    const service = req.query.get('service');
    const key = req.query.get('key');
    if (!service || key === null) return { status: 400, json: { error: 'the service and key query parameters are required' } };
    const e = node.table.get(service, key);
    const lookup: Lookup = {
      service,
      key,
      servedBy: node.id,
      knownService: node.service(service) !== undefined,
      flow: e ? { primary: e.primary, backup: e.backup, backend: e.backend, writer: e.writer, lastActive: e.lastActive } : null,
      wouldOwn: node.wouldOwn(key),
      ranking: node.ranking(key),
    };
    return { status: 200, json: lookup };
  });
  return stream;
}

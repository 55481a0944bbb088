// The "naive Node proxy" contender: node:http in front, an undici Pool to the backend, the way most
// Node reverse proxies are written. Usage: naive-proxy.ts HOST PORT BACKEND_HOST:PORT
// It strips the hop-by-hop headers (RFC 9110 §7.6.1) both ways, or a client's `Connection: close`
// would close the pooled backend connection too, and adds X-Forwarded-For like the other peers.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';

const [host, port, backend] = process.argv.slice(2);
const pool = new Pool(`http://${backend}`, { connectTimeout: 5000, headersTimeout: 30_000, bodyTimeout: 30_000, keepAliveTimeout: 60_000 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);
const strip = (h: Record<string, string | string[] | undefined>) => Object.fromEntries(Object.entries(h).filter(([k]) => !HOP.has(k)));

async function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const headers = { ...strip(req.headers), 'x-forwarded-for': req.socket.remoteAddress ?? '' };
    const body = req.method === 'GET' || req.method === 'HEAD' ? null : req;
    const r = await pool.request({ method: req.method as Dispatcher.HttpMethod, path: req.url ?? '/', headers, body });
    res.writeHead(r.statusCode, strip(r.headers));
    pipeline(r.body, res, () => undefined);
  } catch {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  }
}

const server = createServer((req, res) => void forward(req, res));
server.keepAliveTimeout = 60_000;
server.headersTimeout = 30_000;
server.requestTimeout = 30_000;
server.listen(Number(port), host, () => process.stdout.write(`listening on ${host}:${port}\n`));

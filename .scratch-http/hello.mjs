import http from 'node:http';
import { Pool } from 'undici';
const mode = process.argv[2];
const pool = new Pool('http://127.0.0.1:17290', { pipelining: 1, connections: 128 });
class H {
  constructor(res) { this.res = res; }
  onConnect() {}
  onHeaders(s, raw, resume, text) { const h = []; for (let i = 0; i < raw.length; i += 2) h.push(raw[i].toString('latin1'), raw[i+1].toString('latin1')); this.res.writeHead(s, h); return true; }
  onData(c) { return this.res.write(c); }
  onComplete() { this.res.end(); }
  onError(e) { this.res.statusCode = 502; this.res.end(); }
}
http.createServer({ keepAliveTimeout: 60000 }, (req, res) => {
  if (mode === 'hello') { res.end('ok\n'); return; }
  pool.dispatch({ path: req.url, method: req.method, headers: req.rawHeaders, body: null }, new H(res));
}).listen(17295, '127.0.0.1');

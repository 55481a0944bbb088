// Experiment: node:http server + raw keep-alive backend sockets parsed with Node's own llhttp binding.
import http from 'node:http';
import net from 'node:net';
import { HTTPParser } from '_http_common';
const kOnHeadersComplete = HTTPParser.kOnHeadersComplete | 0;
const kOnBody = HTTPParser.kOnBody | 0;
const kOnMessageComplete = HTTPParser.kOnMessageComplete | 0;
const idle = [];
function conn() {
  const s = net.connect(17290, '127.0.0.1'); s.setNoDelay(true);
  const p = new HTTPParser();
  p.initialize(HTTPParser.RESPONSE, {});
  s.parser = p; s.cur = null;
  p[kOnHeadersComplete] = (vm, vmi, raw, method, url, status, msg) => { const res = s.cur; const h = []; for (let i = 0; i < raw.length; i += 2) { const n = raw[i]; if (n.length === 10 && n.toLowerCase() === 'connection') continue; h.push(n, raw[i+1]); } res.writeHead(status, h); return 0; };
  p[kOnBody] = (b) => { s.cur.write(b); };
  p[kOnMessageComplete] = () => { const res = s.cur; s.cur = null; res.end(); idle.push(s); };
  s.on('data', (d) => p.execute(d));
  return s;
}
http.createServer({ keepAliveTimeout: 60000 }, (req, res) => {
  const s = idle.pop() ?? conn();
  s.cur = res;
  let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
  const r = req.rawHeaders; for (let i = 0; i < r.length; i += 2) head += `${r[i]}: ${r[i+1]}\r\n`;
  s.write(head + 'via: 1.1 x\r\n\r\n', 'latin1');
}).listen(17296, '127.0.0.1');

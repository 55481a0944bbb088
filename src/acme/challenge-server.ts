/**
 * A minimal HTTP listener for HTTP-01 answers, for a challenge port on which no http service of
 * this node listens (otherwise that service answers, docs/tls.md "ACME"). It answers only
 * `GET /.well-known/acme-challenge/TOKEN`; everything else gets 404.
 */
import { createServer, type Server } from 'node:http';

export class ChallengeServer {
  readonly #server: Server;

  constructor(answer: (path: string) => string | null) {
    this.#server = createServer((req, res) => {
      const body = req.method === 'GET' || req.method === 'HEAD' ? answer(req.url ?? '') : null;
      if (body === null) {
        res.writeHead(404, { 'content-type': 'text/plain', connection: 'close' }).end('not found\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(body) }).end(req.method === 'HEAD' ? undefined : body);
    });
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 10_000;
    this.#server.maxHeadersCount = 64;
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

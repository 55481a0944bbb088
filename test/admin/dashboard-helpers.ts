/** Helpers for the dashboard tests: a raw server-sent-events reader and a bounded traffic loop. */
import { get, request, Agent } from 'node:http';

export interface SseEvent {
  readonly event: string;
  readonly data: string;
  readonly retry?: number;
}

/** Reads an event stream until `done(events)` holds or the timeout; then closes it. */
export function readSse(url: string, done: (events: SseEvent[]) => boolean, timeoutMs: number): Promise<SseEvent[]> {
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    let buf = '';
    const req = get(url, (res) => {
      if (res.statusCode !== 200) {
        req.destroy();
        return reject(new Error(`stream answered ${res.statusCode}`));
      }
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message';
          const data: string[] = [];
          let retry: number | undefined;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const [field, ...rest] = line.split(':');
            const value = rest.join(':').replace(/^ /, '');
            if (field === 'event') event = value;
            else if (field === 'data') data.push(value);
            else if (field === 'retry') retry = Number(value);
          }
          if (data.length === 0 && retry === undefined) continue;
          events.push({ event, data: data.join('\n'), ...(retry !== undefined ? { retry } : {}) });
        }
        if (done(events)) {
          clearTimeout(timer);
          req.destroy();
          resolve(events);
        }
      });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`stream: condition not met within ${timeoutMs} ms (${events.length} events)`));
    }, timeoutMs);
  });
}

export interface Traffic {
  sent(): number;
  stop(): Promise<void>;
}

/**
 * HTTP requests through the proxy, round-robin over the nodes, 20 flow keys (session-0..19), one
 * every 50 ms; failures (a killed node) are ignored. Bounded: 4000 requests or 120 s, whichever
 * comes first.
 */
export function trafficLoop(hosts: readonly string[], port: number): Traffic {
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  let n = 0;
  let ok = 0;
  const started = Date.now();
  const timer = setInterval(() => {
    if (n >= 4000 || Date.now() - started > 120_000) return clearInterval(timer);
    const i = n++;
    const req = request({ host: hosts[i % hosts.length], port, path: '/', agent, headers: { 'x-session': `session-${i % 20}` }, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => ok++);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => undefined);
    req.end();
  }, 50);
  return {
    sent: () => ok,
    async stop() {
      clearInterval(timer);
      agent.destroy();
    },
  };
}

/**
 * Generates docs/metrics.md from a live single-node tandem with one service of each protocol (and an
 * https one), so
 * the list is the truth rather than a copy of it. `node --import tsx scripts/metrics-doc.ts`
 * rewrites the file; test/docs/metrics-doc.test.ts fails when the file is out of date.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { validateConfig } from '../src/config/load.js';
import { TandemNode } from '../src/node/node.js';

const FIXTURE = (f: string): string => new URL(`../test/tls/fixtures/${f}`, import.meta.url).pathname;

export async function metricsDoc(): Promise<string> {
  const config = validateConfig({
    cluster: {
      name: 'doc',
      secret: 'metrics-doc-secret-0123456789',
      snapshotTimeoutMs: 0,
      nodes: [{ id: 'lb1', host: '127.0.0.9', peerPort: 18390, adminPort: 18391 }],
    },
    services: [
      { name: 'web', protocol: 'http', port: 18392, backends: [{ address: '127.0.0.1:1' }], healthCheck: { type: 'none' } },
      // HTTPS (TLS termination, HTTP/2 to clients), with a test certificate.
      { name: 'webs', protocol: 'http', port: 18395, backends: [{ address: '127.0.0.1:1' }], healthCheck: { type: 'none' }, tls: { certificates: [{ cert: FIXTURE('a.crt'), key: FIXTURE('a.key') }] } },
      { name: 'tcp', protocol: 'tcp', port: 18393, backends: [{ address: '127.0.0.1:1' }], healthCheck: { type: 'none' } },
      { name: 'udp', protocol: 'udp', port: 18394, backends: [{ address: '127.0.0.1:1' }] },
    ],
  });
  const node = new TandemNode(config, 'lb1', { logger: pino({ level: 'silent' }) });
  await node.start();
  const list = [];
  for (const m of node.registry.getMetricsAsArray()) {
    const data = await (m as unknown as { get(): Promise<{ name: string; type: unknown; help: string }> }).get();
    const labelNames = ((m as unknown as { labelNames?: string[] }).labelNames ?? []).filter((l) => l !== 'le' && l !== 'quantile');
    list.push({ name: data.name, type: String(data.type), help: data.help, labels: labelNames });
  }
  await node.stop();
  const rows = list
    .filter((m) => m.name.startsWith('tandem_') && !m.name.startsWith('tandem_process_'))
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((m) => `| \`${m.name}\` | ${m.type} | ${m.labels.join(', ') || '—'} | ${m.help.replace(/\|/g, '\\|')} |`);
  return `# Metrics

Every node serves Prometheus text at \`GET /metrics\` on its admin port. All names start with
\`tandem_\`. Counters kept as plain numbers in hot paths are read at scrape time, so an unscraped
metric costs nothing. Process metrics (CPU, memory, event-loop lag, GC) come from prom-client's
defaults under the prefix \`tandem_process_\` and are not listed here.

This file is generated from a live node by \`node --import tsx scripts/metrics-doc.ts\`; a test
fails when it is out of date.

| metric | type | labels | meaning |
|---|---|---|---|
${rows.join('\n')}
`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const text = await metricsDoc();
  writeFileSync(new URL('../docs/metrics.md', import.meta.url), text);
  console.log('wrote docs/metrics.md');
}

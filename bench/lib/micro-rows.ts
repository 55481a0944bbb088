// Flattens micro-benchmark figures into table rows (pure).
import type { MicroResult } from './types.js';

export interface MicroRow { benchmark: string; figure: string; value: number }

/** Flattens a micro-benchmark's figures into rows: arrays by their `nodes`/`policy` label. */
export function microRows(r: MicroResult): MicroRow[] {
  const rows: MicroRow[] = [];
  const addObject = (label: string, o: Record<string, unknown>, skip: string[]) => {
    for (const [k, v] of Object.entries(o)) {
      if (skip.includes(k)) continue;
      if (typeof v === 'number') rows.push({ benchmark: label, figure: k, value: v });
    }
  };
  const f = r.figures;
  if (Array.isArray(f)) {
    f.forEach((item, i) => {
      if (!item || typeof item !== 'object') return;
      const o = item as Record<string, unknown>;
      const label = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : JSON.stringify(v));
      const tag = o.nodes !== undefined ? `${label(o.nodes)} nodes` : o.policy !== undefined ? label(o.policy) : o.routes !== undefined ? `${label(o.routes)} routes` : `#${i + 1}`;
      addObject(`${r.name} (${tag})`, o, ['nodes', 'policy', 'routes']);
    });
  } else if (f && typeof f === 'object') {
    addObject(r.name, f as Record<string, unknown>, []);
  } else if (typeof f === 'number') {
    rows.push({ benchmark: r.name, figure: 'value', value: f });
  }
  return rows;
}

/** "decisionsPerSec" → "decisions/s", "nsPerDecision" → "ns/decision", "bytesPerEntryOnWire" → "bytes/entry on wire". */
export function figureLabel(key: string): string {
  return key
    .replace(/PerSec(?=[A-Z]|$)/g, '/s')
    .replace(/Per([A-Z])/g, (_m, c: string) => `/${c.toLowerCase()}`)
    .replace(/([a-z0-9])([A-Z])/g, (_m, a: string, c: string) => `${a} ${c.toLowerCase()}`);
}

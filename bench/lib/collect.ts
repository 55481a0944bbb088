// Turns the per-round figures of a scenario into table rows (medians, statuses, reasons).
import { CONTENDERS, type Cell, type ContenderId, type MetricRow } from './types.js';
import { median } from './stats.js';

/** na: contenders this figure does not apply to, with the reason (e.g. no CPU to meter for direct). */
export interface MetricDef {
  key: string;
  metric: string;
  unit: string;
  better: 'higher' | 'lower' | 'none';
  headline?: boolean;
  na?: Partial<Record<ContenderId, string>>;
}
export type PlanStatus = { kind: 'run' } | { kind: 'unavailable' | 'n/a'; reason: string };

/**
 * samples[contender][metricKey] holds one figure per successful round; failures[contender] the
 * error of each failed round. A contender that ran but never succeeded is "unavailable" with its
 * first error as the reason.
 */
export function buildMetricRows(
  metrics: readonly MetricDef[],
  plan: Record<ContenderId, PlanStatus>,
  samples: Partial<Record<ContenderId, Record<string, number[]>>>,
  failures: Partial<Record<ContenderId, string[]>>,
): MetricRow[] {
  return metrics.map((m) => {
    const cells = {} as Record<ContenderId, Cell>;
    for (const { id } of CONTENDERS) {
      const p = plan[id];
      if (p.kind !== 'run') {
        cells[id] = { status: p.kind, reason: p.reason, samples: [] };
        continue;
      }
      const na = m.na?.[id];
      if (na !== undefined) {
        cells[id] = { status: 'n/a', reason: na, samples: [] };
        continue;
      }
      const s = (samples[id]?.[m.key] ?? []).filter((x) => Number.isFinite(x));
      const value = median(s);
      if (value === undefined) {
        const why = failures[id]?.[0] ?? 'no figure measured';
        cells[id] = { status: 'unavailable', reason: why, samples: s };
      } else {
        cells[id] = { status: 'ok', value, samples: s };
      }
    }
    return { key: m.key, metric: m.metric, unit: m.unit, better: m.better, headline: m.headline === true, cells };
  });
}

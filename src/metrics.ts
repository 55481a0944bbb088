/**
 * The one way tandem makes its Prometheus metrics: `counter`, `gauge` and `histogram` on a
 * registry. Every node has its own registry (several nodes share one test process), and every set
 * of metrics is made once per node by the module that owns it, which the composition root creates
 * and hands down. A name already on the registry is taken over: the new metric replaces the old
 * one, so a module restarted inside one process, or loaded twice, gets its name instead of
 * prom-client's "already registered". Label values come from bounded sets (config names, fixed
 * outcomes spelled with '-').
 */
import { Counter, Gauge, Histogram, type CounterConfiguration, type GaugeConfiguration, type HistogramConfiguration, type Registry } from 'prom-client';

type Spec<C> = Omit<C, 'registers'>;

function takeOver(registry: Registry, name: string): void {
  if (registry.getSingleMetric(name) !== undefined) registry.removeSingleMetric(name);
}

export function counter<L extends string = string>(registry: Registry, spec: Spec<CounterConfiguration<L>>): Counter<L> {
  takeOver(registry, spec.name);
  return new Counter<L>({ ...spec, registers: [registry] });
}

export function gauge<L extends string = string>(registry: Registry, spec: Spec<GaugeConfiguration<L>>): Gauge<L> {
  takeOver(registry, spec.name);
  return new Gauge<L>({ ...spec, registers: [registry] });
}

export function histogram<L extends string = string>(registry: Registry, spec: Spec<HistogramConfiguration<L>>): Histogram<L> {
  takeOver(registry, spec.name);
  return new Histogram<L>({ ...spec, registers: [registry] });
}

/**
 * @deprecated Only src/proxy/http and src/tls still use it (their metrics are made with the
 * helpers above, but memoised per registry instead of being made by the composition root and
 * handed down like every other module's). `create` runs once per registry; later calls with the
 * same registry get the same object.
 */
export function perRegistry<T>(create: (registry: Registry) => T): (registry: Registry) => T {
  const made = new WeakMap<Registry, T>();
  return (registry) => {
    let m = made.get(registry);
    if (m === undefined) {
      m = create(registry);
      made.set(registry, m);
    }
    return m;
  };
}

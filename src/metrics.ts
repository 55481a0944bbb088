/**
 * Helpers for modules that keep their prom-client metrics per registry (one registry per node,
 * several nodes in one test process).
 */
import type { Registry } from 'prom-client';

/** `create` called once per registry; later calls with the same registry get the same object. */
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

/**
 * The name, after removing a metric of that name already on the registry: a second instance on
 * the same registry (a restart inside one process, a module loaded twice) takes the name over
 * instead of failing on "already registered".
 */
export function takeOverName(registry: Registry, name: string): string {
  if (registry.getSingleMetric(name) !== undefined) registry.removeSingleMetric(name);
  return name;
}

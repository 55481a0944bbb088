/** The certificates the config asks ACME for: one per distinct (directory, set of names). */
import { createHash } from 'node:crypto';
import type { Config } from '../config/schema.js';

export interface AcmeSpec {
  readonly id: string;
  readonly services: readonly string[];
  readonly directory: string;
  readonly email: string;
  readonly domains: readonly string[];
  readonly caFile: string | null;
  readonly challengePort: number;
}

/** A stable file-safe id for a certificate: its first name and a hash of directory and names. */
export function certificateId(directory: string, domains: readonly string[]): string {
  const h = createHash('sha256').update(`${directory}\0${[...domains].map((d) => d.toLowerCase()).sort().join(',')}`).digest('hex').slice(0, 10);
  return `${domains[0].toLowerCase().replace(/[^a-z0-9.-]/g, '_')}-${h}`;
}

export function specsOf(config: Config): AcmeSpec[] {
  const byId = new Map<string, AcmeSpec>();
  for (const s of config.services) {
    const a = s.tls?.acme;
    if (!a) continue;
    const id = certificateId(a.directory, a.domains);
    const had = byId.get(id);
    byId.set(id, had ? { ...had, services: [...had.services, s.name] } : { id, services: [s.name], directory: a.directory, email: a.email, domains: a.domains, caFile: a.caFile, challengePort: a.challengePort });
  }
  return [...byId.values()];
}


// Fills the config templates of bench/configs with ports and paths at run time.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CONFIG_DIR = new URL('../configs/', import.meta.url).pathname;

/** Replaces every {{NAME}}; throws when a placeholder has no value. */
export function fillTemplate(template: string, vars: Record<string, string | number>): string {
  const out = template.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_m, name: string) => {
    if (!(name in vars)) throw new Error(`template placeholder {{${name}}} has no value`);
    return String(vars[name]);
  });
  return out;
}

/** Reads bench/configs/NAME, fills it, writes it to dir/NAME and returns that path. */
export function renderConfig(name: string, dir: string, vars: Record<string, string | number>): string {
  const text = fillTemplate(readFileSync(join(CONFIG_DIR, name), 'utf8'), vars);
  const out = join(dir, name);
  writeFileSync(out, text);
  return out;
}

// Reads the .cpuprofile files of a --cpu-prof run and summarizes them, naming tandem's frames by
// their TypeScript line through dist/'s source maps.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SourceMap } from 'node:module';
import { summarizeProfile, type CallFrame, type CpuProfile } from './cpuprofile.js';
import type { ProfileSummary } from './types.js';

const WINDOWS = 'windows.json';

type Windows = Partial<Record<string, Array<[number, number]>>>;

/** The measured rounds' windows (monotonic µs) by contender: tandem1 (1 hop), tandem2 (2 hops). */
export function writeWindows(dir: string, windows: Windows): void {
  writeFileSync(join(dir, WINDOWS), `${JSON.stringify(windows)}\n`);
}

function readWindows(dir: string): Windows {
  const f = join(dir, WINDOWS);
  if (!existsSync(f)) return {};
  try {
    const w = JSON.parse(readFileSync(f, 'utf8')) as unknown;
    return Array.isArray(w) ? { measured: w as Array<[number, number]> } : (w as Windows);
  } catch {
    return {};
  }
}

const HOPS: Record<string, string> = { tandem1: '1 hop', tandem2: '2 hops', measured: 'measured rounds' };

/** Maps a frame of dist/*.js to its src/*.ts line when the build left a source map. */
function sourceMapper(root: string): (f: CallFrame) => string | undefined {
  const maps = new Map<string, SourceMap | null>();
  return (f) => {
    if (!f.url.startsWith('file://')) return undefined;
    const js = fileURLToPath(f.url);
    let map = maps.get(js);
    if (map === undefined) {
      try {
        map = existsSync(`${js}.map`) ? new SourceMap(JSON.parse(readFileSync(`${js}.map`, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]) : null;
      } catch {
        map = null;
      }
      maps.set(js, map);
    }
    if (!map) return undefined;
    const e = map.findEntry(f.lineNumber, f.columnNumber) as { originalSource?: string; originalLine?: number };
    if (!e.originalSource || e.originalLine === undefined) return undefined;
    const src = e.originalSource.startsWith('file://') ? fileURLToPath(e.originalSource) : resolve(dirname(js), e.originalSource);
    return `${relative(root, src)}:${e.originalLine + 1}`;
  };
}

/**
 * Summaries of every NODE.cpuprofile in dir (one per tandem node), one per hop count recorded in
 * windows.json (the whole profile when there is none). A node that was nearly idle during a hop
 * count (lb2 while lb1 serves 1-hop flows itself) is left out.
 */
export function summarizeDir(dir: string, scenario: string, root: string, top = 25): ProfileSummary[] {
  if (!existsSync(dir)) return [];
  const windows = readWindows(dir);
  const mapped = sourceMapper(root);
  const where = (f: CallFrame) =>
    mapped(f) ?? (f.url ? `${f.url.startsWith('file://') ? relative(root, fileURLToPath(f.url)) : f.url}:${f.lineNumber + 1}` : '(native)');
  const sets = Object.entries(windows).filter(([, w]) => w && w.length > 0) as Array<[string, Array<[number, number]>]>;
  const out: ProfileSummary[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.cpuprofile')).sort()) {
    const file = join(dir, name);
    const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const node = name.replace(/\.cpuprofile$/, '');
    const base = { scenario, file: relative(root, file), root, top, where };
    if (sets.length === 0) out.push(summarizeProfile(p, { ...base, node }));
    for (const [id, w] of sets) out.push(summarizeProfile(p, { ...base, node: `${node}, ${HOPS[id] ?? id}`, windows: w }));
  }
  const most = Math.max(0, ...out.map((s) => s.busyMs));
  return out.filter((s) => s.busyMs >= most * 0.1);
}

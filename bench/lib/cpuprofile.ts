// Summarizes a V8 .cpuprofile (node --cpu-prof): self time by function, and the shares of tandem's
// own code, its dependencies, node's internals, the garbage collector and native code. Pure: the
// caller reads the file and resolves locations (e.g. through source maps, see profile-io.ts).
// Format: Chrome DevTools protocol, Profiler.Profile (nodes with callFrame, samples, timeDeltas).
import type { ProfileFunction, ProfileGroup, ProfileSummary } from './types.js';

export interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number; scriptId?: string | number }
export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: CallFrame }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export const GROUP_LABELS: Record<ProfileGroup, string> = {
  tandem: "tandem's code",
  dependencies: 'dependencies (node_modules, wasm)',
  node: 'node internals (node:*)',
  gc: 'GC',
  native: 'native (V8, C++ bindings, (program))',
  other: 'other',
};

/** Which group a frame's self time belongs to; 'idle' is kept apart from every share. */
export function classify(f: CallFrame, root: string): ProfileGroup | 'idle' {
  const name = f.functionName;
  if (name === '(idle)') return 'idle';
  if (name === '(garbage collector)') return 'gc';
  if (name === '(program)' || name === '(root)') return 'native';
  const url = f.url;
  if (url === '') return 'native';
  if (url.startsWith('node:')) return 'node';
  // WebAssembly in a Node process is a dependency's (undici's llhttp); Node's own parser is C++.
  if (url.includes('/node_modules/') || url.startsWith('wasm://')) return 'dependencies';
  const path = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
  if (path.startsWith(root)) return 'tandem';
  return 'other';
}

export interface SummarizeOptions {
  scenario: string;
  node: string;
  file: string;
  /** Project root (absolute path, with the trailing slash): frames under it are tandem's. */
  root: string;
  /** Monotonic µs windows to keep (the measured rounds); none or no overlap → the whole profile. */
  windows?: ReadonlyArray<readonly [number, number]>;
  /** Where a frame is, for the table (e.g. the .ts line through the source map). */
  where?: (f: CallFrame) => string;
  top?: number;
}

function defaultWhere(f: CallFrame, root: string): string {
  if (!f.url) return '(native)';
  const url = f.url.startsWith('file://') ? decodeURIComponent(f.url.slice('file://'.length)) : f.url;
  const rel = url.startsWith(root) ? url.slice(root.length) : url;
  return `${rel}:${f.lineNumber + 1}`;
}

export function summarizeProfile(p: CpuProfile, o: SummarizeOptions): ProfileSummary {
  const frames = new Map<number, CallFrame>();
  for (const n of p.nodes) frames.set(n.id, n.callFrame);
  // Sample i lasts until sample i+1 (DevTools' reading); the last one as long as the one before.
  const n = p.samples.length;
  const times = new Array<number>(n);
  let t = p.startTime;
  for (let i = 0; i < n; i++) {
    t += p.timeDeltas[i] ?? 0;
    times[i] = t;
  }
  const dur = (i: number) => (i + 1 < n ? times[i + 1] - times[i] : i > 0 ? times[i] - times[i - 1] : 0);
  const windows = o.windows ?? [];
  const inWindow = (x: number) => windows.some(([a, b]) => x >= a && x <= b);
  const windowed = windows.length > 0 && times.some(inWindow);
  const byFn = new Map<string, { f: CallFrame; group: ProfileGroup; us: number }>();
  const groups: Record<ProfileGroup, number> = { tandem: 0, dependencies: 0, node: 0, gc: 0, native: 0, other: 0 };
  let busy = 0;
  let idle = 0;
  let busySamples = 0;
  for (let i = 0; i < n; i++) {
    if (windowed && !inWindow(times[i])) continue;
    const f = frames.get(p.samples[i]);
    if (!f) continue;
    const us = Math.max(0, dur(i));
    const g = classify(f, o.root);
    if (g === 'idle') {
      idle += us;
      continue;
    }
    busy += us;
    busySamples++;
    groups[g] += us;
    const key = `${f.functionName}\u0000${f.url}\u0000${f.lineNumber}\u0000${f.columnNumber}`;
    const e = byFn.get(key);
    if (e) e.us += us;
    else byFn.set(key, { f, group: g, us });
  }
  const share = (us: number) => (busy > 0 ? us / busy : 0);
  const where = o.where ?? ((f: CallFrame) => defaultWhere(f, o.root));
  const top: ProfileFunction[] = [...byFn.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, o.top ?? 25)
    .map((e) => ({ name: e.f.functionName || '(anonymous)', where: where(e.f), group: e.group, share: share(e.us) }));
  const shares = { ...groups };
  for (const k of Object.keys(shares) as ProfileGroup[]) shares[k] = share(groups[k]);
  return {
    scenario: o.scenario, node: o.node, file: o.file, busySamples, busyMs: busy / 1000,
    idleShare: busy + idle > 0 ? idle / (busy + idle) : 0, windowed, groups: shares, top,
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The summary as text lines (printed at the end of a --cpu-prof run and by bench/profile.ts). */
export function formatProfile(s: ProfileSummary, top = 15): string[] {
  const lines = [
    `${s.node} (${s.scenario}): ${Math.round(s.busyMs).toLocaleString('en-US')} ms of CPU in ${s.busySamples.toLocaleString('en-US')} samples` +
      `${s.windowed ? ' within the measured rounds' : ' (whole profile)'}, idle ${pct(s.idleShare)} — ${s.file}`,
    `  by group: ${(Object.keys(GROUP_LABELS) as ProfileGroup[]).filter((g) => s.groups[g] > 0).map((g) => `${GROUP_LABELS[g]} ${pct(s.groups[g])}`).join(' · ')}`,
    '  self    group         function  (where)',
  ];
  for (const f of s.top.slice(0, top)) lines.push(`  ${pct(f.share).padStart(6)}  ${f.group.padEnd(12)}  ${f.name}  (${f.where})`);
  return lines;
}

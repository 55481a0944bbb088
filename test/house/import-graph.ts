/**
 * The import graph of a source tree, for the no-cycles rule of the house. Every relative import
 * counts, `import type` included: a cycle of type imports still ties the modules' designs together,
 * even though it costs nothing at run time. TypeScript's own pre-processor finds the imports, so
 * comments, strings and template literals never fool it.
 */
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** module (path relative to root) → the modules it imports. */
export type ImportGraph = Map<string, string[]>;

function walk(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (/\.(ts|mts|tsx)$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The file a relative specifier names: NodeNext spells TypeScript modules with their .js name. */
function resolveSpecifier(from: string, spec: string): string | null {
  const base = resolve(dirname(from), spec);
  const candidates = [base, base.replace(/\.js$/, '.ts'), base.replace(/\.mjs$/, '.mts'), `${base}.ts`, join(base, 'index.ts')];
  for (const c of candidates) if (existsSync(c) && statSync(c).isFile()) return c;
  return null;
}

export function importGraph(root: string): ImportGraph {
  const graph: ImportGraph = new Map();
  for (const file of walk(root, [])) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const deps = new Set<string>();
    for (const { fileName } of info.importedFiles) {
      if (!fileName.startsWith('.')) continue; // packages and node: builtins
      const target = resolveSpecifier(file, fileName);
      if (target === null) throw new Error(`${relative(root, file)}: cannot resolve "${fileName}"`);
      deps.add(relative(root, target));
    }
    graph.set(relative(root, file), [...deps].sort());
  }
  return graph;
}

/**
 * Every import cycle, one per strongly connected component (Tarjan, "Depth-first search and
 * linear graph algorithms", SIAM J. Comput. 1(2), 1972), each given as one concrete circle
 * a → b → … → a through that component.
 */
export function findCycles(graph: ImportGraph): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const strong = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      const selfLoop = (graph.get(v) ?? []).includes(v);
      if (comp.length > 1 || selfLoop) components.push(comp);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) strong(v);
  return components.map((comp) => circle(graph, new Set(comp)));
}

/** A shortest circle through the first module of a component (breadth-first inside it). */
function circle(graph: ImportGraph, comp: ReadonlySet<string>): string[] {
  const start = [...comp].sort()[0];
  const prev = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i];
    for (const w of graph.get(v) ?? []) {
      if (!comp.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let x = v; x !== start; x = prev.get(x)!) path.splice(1, 0, x);
        return [...path, start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

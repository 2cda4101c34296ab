// The layout of lib/: folders by concept, at most 4 files at the root, and no import cycles (every relative
// import counts, `import type` included). Also: test files are grouped as lib/ is.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..', '..');
const LIB = join(ROOT, 'lib');

function files(dir: string, ext: RegExp): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p, ext) : ext.test(f) ? [p] : [];
  });
}

/** lib-relative module -> lib-relative modules it imports (static `from '...'`, `import '...'`, `import('...')`). */
function importGraph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of files(LIB, /\.ts$/)) {
    const src = readFileSync(f, 'utf8');
    const from = posix.normalize(relative(LIB, f).split('\\').join('/'));
    const deps = [...src.matchAll(/(?:from\s+|import\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) =>
      posix.normalize(posix.join(posix.dirname(from), m[1]!.replace(/\.js$/, '.ts'))));
    g.set(from, deps);
  }
  return g;
}

/** Every cycle found by a depth-first search, as the list of modules around it. */
function cycles(g: Map<string, string[]>): string[][] {
  const out: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string) => {
    state.set(n, 'open');
    stack.push(n);
    for (const d of g.get(n) ?? []) {
      if (state.get(d) === 'open') out.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of g.keys()) if (!state.has(n)) visit(n);
  return out;
}

describe('lib layout', () => {
  it('lib/ root holds at most 4 files (index.ts and native.ts as the entry points)', () => {
    const root = readdirSync(LIB).filter((f) => statSync(join(LIB, f)).isFile());
    expect(root.length, root.join(', ')).toBeLessThanOrEqual(4);
    expect(root).toContain('index.ts');
    expect(root).toContain('native.ts');
  });

  it('no import cycles among lib/**/*.ts', () => {
    const g = importGraph();
    expect(g.size).toBeGreaterThan(50);
    for (const deps of g.values()) for (const d of deps) expect(g.has(d), d).toBe(true);
    const found = cycles(g).map((c) => c.join(' -> '));
    expect(found).toEqual([]);
  });

  it('the cycle search finds a cycle when there is one', () => {
    expect(cycles(new Map([['a.ts', ['b.ts']], ['b.ts', ['c.ts']], ['c.ts', ['a.ts']]]))).toEqual([['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
  });

  // quantizer/ has its own folder natively (lib/tokenizer/quantizer.ts): the dense, chunked and fused kernels
  it('native/ibq is in folders by concept, named as those of lib/ (plus core/ and quantizer/), with no Node-API', () => {
    const NATIVE = join(ROOT, 'native', 'ibq');
    const libFolders = new Set(readdirSync(LIB).filter((f) => statSync(join(LIB, f)).isDirectory()));
    const entries = readdirSync(NATIVE);
    expect(entries.filter((f) => statSync(join(NATIVE, f)).isFile()), 'files at the root of native/ibq').toEqual([]);
    for (const d of entries) expect(['core', 'quantizer'].includes(d) || libFolders.has(d), `native/ibq/${d}`).toBe(true);
    const sources = files(NATIVE, /\.(h|cpp)$/);
    expect(sources.length).toBeGreaterThan(40);
    for (const f of sources) expect(readFileSync(f, 'utf8'), relative(ROOT, f)).not.toMatch(/#include\s*[<"]napi\.h/);
  });

  it('test files are grouped in the folders of lib/', () => {
    const libFolders = new Set(readdirSync(LIB).filter((f) => statSync(join(LIB, f)).isDirectory()));
    for (const f of files(join(ROOT, 'test'), /\.test\.ts$/)) {
      const folder = relative(join(ROOT, 'test'), dirname(f)).split(/[\\/]/)[0]!;
      expect(libFolders.has(folder), relative(ROOT, f)).toBe(true);
    }
  });
});

/**
 * The layers of DESIGN.md ("Layers (the folders should show them)") hold in src/: every
 * import — `import`, `import type`, `export … from`, `import()` calls and `import('…')` types,
 * `require()` in CommonJS files — points down the layer list, and the module graph has no
 * cycle. Each failure names the files, so the fix is to move code down, not to exempt it.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/**
 * What each layer sits on (it may import these and, through them, everything below).
 * `base` is the top-level files of src/ (errors, dispose, iso-time, loggers, the optional-
 * dependency loader): they import only each other. `api` is src/index.ts, the library's door.
 * client and server are siblings: neither imports the other; the gateway uses both.
 */
const SITS_ON: Record<string, readonly string[]> = {
  base: [],
  protocol: ['base'],
  transport: ['protocol'],
  channel: ['transport'],
  process: ['channel'],
  auth: ['process'],
  audit: ['auth'],
  server: ['audit'],
  client: ['audit'],
  fleet: ['client'],
  gateway: ['fleet', 'server'],
  // The web console (issue 14): in the gateway's process, a client of it (src/web/).
  web: ['gateway'],
  api: ['fleet', 'server'],
  cli: ['fleet', 'gateway', 'server', 'web'],
};

function below(layer: string, seen = new Set<string>()): Set<string> {
  for (const lower of SITS_ON[layer] ?? []) {
    if (!seen.has(lower)) {
      seen.add(lower);
      below(lower, seen);
    }
  }
  return seen;
}

/** The layer of a file, by its folder under src/ (paths relative to src/, with `/`). */
function layerOf(file: string): string {
  if (file === 'index.ts') return 'api';
  const slash = file.indexOf('/');
  return slash === -1 ? 'base' : file.slice(0, slash);
}

function sourceFiles(dir = SRC): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(full));
    else if (/\.(c|m)?ts$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(full);
  }
  return out.sort();
}

/** Every module specifier a file names, with the kind of reference (for the messages). */
function specifiers(file: string, text = readFileSync(file, 'utf8')): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const literal = (node: ts.Node | undefined): void => {
    if (node !== undefined && ts.isStringLiteralLike(node)) found.push(node.text);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) literal(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) literal(node.moduleReference.expression);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) literal(node.argument.literal);
    else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const isImport = callee.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(callee) && callee.text === 'require';
      if (isImport || isRequire) {
        const arg = node.arguments[0];
        if (arg !== undefined && ts.isStringLiteralLike(arg)) literal(arg);
        else if (isImport && arg !== undefined) found.push(`<computed: ${arg.getText(source)}>`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** A relative specifier resolved to a file under src/ (`.js` names the `.ts` file, `.cjs` the `.cts`). */
function resolve(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const target = path.resolve(path.dirname(from), spec);
  const candidates = [
    target.replace(/\.js$/, '.ts'),
    target.replace(/\.cjs$/, '.cts'),
    target.replace(/\.mjs$/, '.mts'),
    target,
    `${target}.ts`,
    path.join(target, 'index.ts'),
  ];
  return candidates.find((c) => existsSync(c) && statSync(c).isFile());
}

interface Graph {
  files: string[];
  edges: Map<string, string[]>;
  unresolved: string[];
}

function buildGraph(): Graph {
  const files = sourceFiles().map((f) => path.relative(SRC, f).split(path.sep).join('/'));
  const edges = new Map<string, string[]>();
  const unresolved: string[] = [];
  for (const file of files) {
    const targets = new Set<string>();
    for (const spec of specifiers(path.join(SRC, file))) {
      if (spec.startsWith('<computed')) {
        unresolved.push(`${file}: import() of a computed name ${spec}`);
        continue;
      }
      if (!spec.startsWith('.')) continue; // node: built-ins and packages
      const resolved = resolve(path.join(SRC, file), spec);
      if (resolved === undefined) unresolved.push(`${file}: '${spec}' names no file in src/`);
      else targets.add(path.relative(SRC, resolved).split(path.sep).join('/'));
    }
    edges.set(file, [...targets].sort());
  }
  return { files, edges, unresolved };
}

/** Strongly connected components with more than one file (or a file importing itself): the cycles. */
function cycles(graph: Graph): string[][] {
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const connect = (v: string): void => {
    indexOf.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.edges.get(v) ?? []) {
      if (!indexOf.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, indexOf.get(w)!));
      }
    }
    if (low.get(v) === indexOf.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.edges.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const file of graph.files) if (!indexOf.has(file)) connect(file);
  return found;
}

/** One concrete loop through a component, for the message: a → b → … → a. */
function loopThrough(graph: Graph, component: string[]): string {
  const inside = new Set(component);
  const start = component[0]!;
  const parent = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.edges.get(v) ?? []) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const chain = [start];
        for (let u: string | undefined = v; u !== undefined && u !== start; u = parent.get(u)) chain.splice(1, 0, u);
        return [...chain, start].join(' → ');
      }
      if (!parent.has(w)) {
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  return component.join(', ');
}

const graph = buildGraph();

describe('src/ layers', () => {
  test('every file is in a known layer', () => {
    const unknown = graph.files.filter((f) => !(layerOf(f) in SITS_ON));
    assert.deepEqual(unknown, [], `files outside the layers of DESIGN.md (add the folder to SITS_ON): ${unknown.join(', ')}`);
  });

  test('every relative import names a file in src/', () => {
    assert.deepEqual(graph.unresolved, []);
  });

  test('no import points up or sideways across the layer list', () => {
    const violations: string[] = [];
    for (const [file, targets] of graph.edges) {
      const layer = layerOf(file);
      const allowed = below(layer);
      for (const target of targets) {
        const to = layerOf(target);
        if (to !== layer && !allowed.has(to)) violations.push(`${file} (${layer}) imports ${target} (${to})`);
      }
    }
    assert.deepEqual(violations, [], `imports that point up the layers:\n  ${violations.join('\n  ')}`);
  });

  test('no import cycle, type imports included', () => {
    const loops = cycles(graph).map((c) => `${loopThrough(graph, c)}  (files in the cycle: ${c.join(', ')})`);
    assert.deepEqual(loops, [], `import cycles:\n  ${loops.join('\n  ')}`);
  });

  test('the parser sees every kind of import', () => {
    const probe = [
      "import type { A } from './a.js';",
      "export { B } from './b.js';",
      "export type * from './c.js';",
      "const d = await import('./d.js');",
      "type E = typeof import('./e.js');",
      "import f = require('./f.cjs');",
      "const g = require('./g.cjs');",
      "import './h.js';",
    ].join('\n');
    assert.deepEqual(specifiers('probe.ts', probe), ['./a.js', './b.js', './c.js', './d.js', './e.js', './f.cjs', './g.cjs', './h.js']);
    // cli/commands.ts loads the commands only with import(): if those were missed, cli/ would look unused.
    assert.ok(graph.edges.get('cli/commands.ts')!.includes('cli/exec.ts'));
  });
});

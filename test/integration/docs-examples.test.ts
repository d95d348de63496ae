/**
 * The TypeScript in the docs compiles: every ```ts block of README.md and docs/*.md is
 * type-checked under `strict` against the built package (`import … from 'shellwire'`
 * resolves to this repository's package.json `exports`, i.e. dist/*.d.ts), as a user's
 * project would see it. Plus what must NOT compile: `hostKeyPolicy: 'ask'` without
 * `confirmHost`. Needs `npm run build` first (as every CLI test does).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import ts from 'typescript';
import { removeDir } from '../helpers/fixtures.js';
import { packageProject, ROOT, userCompilerOptions } from '../helpers/package-project.js';

let project: string;

before(() => {
  project = packageProject('shellwire-docs-ts-');
});
after(() => removeDir(project));


function typeCheck(files: Record<string, string>): ts.Diagnostic[] {
  const paths = Object.entries(files).map(([name, text]) => {
    const path = join(project, name);
    writeFileSync(path, text);
    return path;
  });
  const program = ts.createProgram(paths, userCompilerOptions(project, true));
  return ts.getPreEmitDiagnostics(program).filter((d) => d.file === undefined || paths.includes(resolve(d.file.fileName)));
}

function show(diagnostics: ts.Diagnostic[]): string {
  return diagnostics
    .map((d) => {
      const where = d.file && d.start !== undefined ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : '';
      return where + ts.flattenDiagnosticMessageText(d.messageText, '\n');
    })
    .join('\n');
}

/** The ```ts blocks of a Markdown file. */
function tsBlocks(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

test('every ```ts block in README.md and docs/*.md type-checks under strict against the built package', () => {
  const docs = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const files: Record<string, string> = {};
  for (const doc of docs) {
    tsBlocks(join(ROOT, doc)).forEach((block, i) => {
      // Each block is its own module (top-level await, its own imports).
      files[`${doc.replace(/[/.]/g, '_')}_${i}.ts`] = `${block}\nexport {};\n`;
    });
  }
  assert.ok(Object.keys(files).some((f) => f.startsWith('docs_errors_md')), 'docs/errors.md has its example');
  assert.ok(Object.keys(files).some((f) => f.startsWith('README_md')), 'README.md has its library example');
  const diagnostics = typeCheck(files);
  assert.equal(diagnostics.length, 0, show(diagnostics));
});

test("hostKeyPolicy 'ask' without confirmHost does not compile; with it, and the other policies, it does", () => {
  const good = typeCheck({
    'good.ts': `import { connect, type ConnectOptions } from 'shellwire';
const ask: ConnectOptions = { hostKeyPolicy: 'ask', confirmHost: async () => false };
const strict: ConnectOptions = { hostKeyPolicy: 'strict' };
const dflt: ConnectOptions = { tokenFile: '/t' };
const interactive = Boolean(process.stdin.isTTY);
// A policy chosen at run time, with the callback always present (what the CLI does).
const chosen: ConnectOptions = { hostKeyPolicy: interactive ? 'ask' : 'accept-new', confirmHost: async () => true };
await connect('h', ask); await connect('h', strict); await connect('h', dflt); await connect('h', chosen);
export {};
`,
  });
  assert.equal(good.length, 0, show(good));
  const bad = typeCheck({ 'bad.ts': `import { connect } from 'shellwire';\nawait connect('h', { hostKeyPolicy: 'ask' });\nexport {};\n` });
  assert.equal(bad.length, 1, show(bad));
  assert.match(show(bad), /confirmHost/);
});

test('await using and session.exec(argv) type-check as documented', () => {
  const diagnostics = typeCheck({
    'dispose.ts': `import { connect, type Connection, type ShellSession, type RemoteProcess } from 'shellwire';
{
  await using conn = await connect('h');
  await using session = await conn.shell();
  await using proc = conn.spawn(['sleep', '1']);
  const disposables: AsyncDisposable[] = [conn, session, proc];
  const text: string = (await session.exec(['printf', '%s', "it's"])).stdout;
  void disposables; void text;
}
export type { Connection, ShellSession, RemoteProcess };
`,
  });
  assert.equal(diagnostics.length, 0, show(diagnostics));
});

test("README: `await using` is said to need TypeScript or Node >= 24, and the plain-JavaScript form it shows parses on this Node", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const check = (source: string) => {
    const file = join(project, `check-${Math.random().toString(36).slice(2)}.mjs`);
    writeFileSync(file, source);
    return spawnSync(process.execPath, ['--check', file], { encoding: 'utf8' });
  };
  const major = Number(process.versions.node.split('.')[0]);
  const usingResult = check('{ await using x = null; }\n');
  // What the README claims about plain JavaScript must hold on the Node running the tests.
  assert.equal(usingResult.status === 0, major >= 24, usingResult.stderr);
  assert.match(readme, /`await using` needs TypeScript ≥ 5\.2 \(compiled\) or Node ≥ 24 for plain JavaScript/);
  const plain = /^\/\/ Plain JavaScript on Node 20[^\n]*\n([\s\S]*?^\}\n)/m.exec(readme);
  assert.ok(plain, 'README shows the try/finally form for plain JavaScript');
  assert.match(plain[1]!, /finally \{\n\s+await \w+\.close\(\);/);
  const parsed = check(`import { connect } from 'shellwire';\n${plain[1]}`);
  assert.equal(parsed.status, 0, parsed.stderr);
});

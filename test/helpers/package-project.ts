/**
 * A scratch project that depends on the built package the way a user's would: its own
 * package.json (ES modules) and `node_modules/shellwire` linked to this repository, so imports
 * resolve through package.json `exports` and the emitted .d.ts files, never through src/.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { tempDir } from './fixtures.js';

export const ROOT = resolve(import.meta.dirname, '../..');

/** Makes the project (in a temp dir the caller removes). Asserts that dist/ has `entries` built. */
export function packageProject(prefix: string, entries: string[] = ['index']): string {
  for (const entry of entries) {
    assert.ok(existsSync(join(ROOT, `dist/${entry}.d.ts`)), `run \`npm run build\` first: dist/${entry}.d.ts is missing`);
  }
  const project = tempDir(prefix);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ type: 'module' }));
  mkdirSync(join(project, 'node_modules/@types'), { recursive: true });
  symlinkSync(ROOT, join(project, 'node_modules/shellwire'));
  symlinkSync(join(ROOT, 'node_modules/@types/node'), join(project, 'node_modules/@types/node'));
  return project;
}

/** A library user's tsconfig: strict, Node 20, ES modules (`await using` needs nothing more). */
export function userCompilerOptions(project: string, skipLibCheck: boolean): ts.CompilerOptions {
  return {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts'],
    types: ['node'],
    typeRoots: [join(project, 'node_modules/@types')],
    skipLibCheck,
  };
}

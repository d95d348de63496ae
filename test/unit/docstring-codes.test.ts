/**
 * Error codes named in prose are codes that exist (review 11, #11): connect()'s docstring
 * named SW_ERR_CONNECT_TIMEOUT, SW_ERR_VERSION and SW_ERR_KEY_FILE, none of which any code
 * raises, and runOn's said NoHostsMatchedError carries SW_ERR_BAD_TARGET. A reader who
 * switches on such a code never matches. Scans every source file (comments included) and
 * the docs: each `SW_ERR_*` token must be in `ErrorCode` (src/errors.ts), and each code in an
 * `@throws {Class}` clause must list that class in its docs/errors.md row.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ErrorCode } from '../../src/errors.js';

const ROOT = join(import.meta.dirname, '../..');
const KNOWN: ReadonlySet<string> = new Set(Object.values(ErrorCode));
const CODE = /SW_ERR_[A-Z0-9_]*[A-Z0-9]/g;

function files(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && keep(e.name))
    .map((e) => join(e.parentPath, e.name));
}

const sources = files('src', (name) => /\.c?ts$/.test(name));
const docs = [...files('docs', (name) => name.endsWith('.md') || name.endsWith('.1')), join(ROOT, 'README.md')];

test('every SW_ERR_* named in src/, docs/ and README.md is an ErrorCode', () => {
  const unknown: string[] = [];
  for (const file of [...sources, ...docs]) {
    readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      for (const [code] of line.matchAll(CODE)) if (!KNOWN.has(code)) unknown.push(`${relative(ROOT, file)}:${i + 1}: ${code}`);
    });
  }
  assert.deepEqual(unknown, [], 'codes that do not exist (fix the text, not this test)');
  assert.ok(sources.length > 50 && docs.length > 3, 'the scan found the files');
});

test('each code in an @throws {Class} clause is one that class carries (docs/errors.md)', () => {
  const classes = new Map<string, string>();
  for (const line of readFileSync(join(ROOT, 'docs/errors.md'), 'utf8').split('\n')) {
    const row = /^\| `(SW_ERR_[A-Z0-9_]+)` \| ([^|]*)\|/.exec(line);
    if (row) classes.set(row[1]!, row[2]!);
  }
  const wrong: string[] = [];
  let clauses = 0;
  for (const file of sources) {
    for (const [, cls, text] of readFileSync(file, 'utf8').matchAll(/@throws \{(\w+)\}([\s\S]*?)(?=\n\s*\*\s*@|\*\/)/g)) {
      clauses++;
      for (const [code] of text!.matchAll(CODE)) {
        const column = classes.get(code);
        if (column === undefined || !column.includes(`\`${cls}\``)) wrong.push(`${relative(ROOT, file)}: @throws {${cls}} names ${code}, which docs/errors.md gives to ${column ?? 'no class'}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
  assert.ok(clauses > 20, 'the scan found the @throws clauses');
});

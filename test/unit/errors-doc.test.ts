/**
 * docs/errors.md is the reference users look codes up in: every `ErrorCode` must have its
 * row, and the page must not list codes that no longer exist.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ErrorCode } from '../../src/errors.js';

const doc = readFileSync(resolve(import.meta.dirname, '../../docs/errors.md'), 'utf8');
/** Codes that start a table row: `| \`SW_ERR_…\` |`. */
const rowCodes = [...doc.matchAll(/^\|\s*`(SW_ERR_[A-Z0-9_]+)`\s*\|/gm)].map((m) => m[1]!);

test('every ErrorCode appears in docs/errors.md', () => {
  for (const code of Object.values(ErrorCode)) {
    assert.ok(doc.includes(code), `${code} is missing from docs/errors.md`);
  }
});

test('every ErrorCode has exactly one table row in docs/errors.md', () => {
  for (const code of Object.values(ErrorCode)) {
    assert.equal(rowCodes.filter((c) => c === code).length, 1, `${code} needs one row in docs/errors.md`);
  }
});

test('docs/errors.md lists no code that ErrorCode does not define', () => {
  const known = new Set<string>(Object.values(ErrorCode));
  const mentioned = new Set(doc.match(/SW_ERR_[A-Z0-9_]+/g) ?? []);
  for (const code of mentioned) assert.ok(known.has(code), `docs/errors.md mentions ${code}, which is not in src/errors.ts`);
});

test('each file in a row\'s "Produced by" column mentions the code (SW_ERR_… or ErrorCode.…)', () => {
  const root = resolve(import.meta.dirname, '../..');
  const byName = new Map(Object.entries(ErrorCode).map(([name, code]) => [code as string, name]));
  const problems: string[] = [];
  for (const line of doc.split('\n')) {
    const code = /^\|\s*`(SW_ERR_[A-Z0-9_]+)`\s*\|/.exec(line)?.[1];
    if (!code) continue;
    const cells = line.split('|').map((c) => c.trim()).filter((c) => c !== '');
    const files = [...cells.at(-1)!.matchAll(/`([^`]+\.ts)`/g)].map((m) => m[1]!);
    if (files.length === 0) problems.push(`${code}: no file in its "Produced by" column`);
    for (const file of files) {
      let text: string;
      try {
        text = readFileSync(resolve(root, file), 'utf8');
      } catch {
        problems.push(`${code}: ${file} does not exist`);
        continue;
      }
      if (!text.includes(code) && !text.includes(`ErrorCode.${byName.get(code)}`)) problems.push(`${code}: ${file} never mentions it`);
    }
  }
  assert.deepEqual(problems, []);
});

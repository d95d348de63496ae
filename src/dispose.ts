/**
 * The key `await using` looks up. Node ≥ 20.4 defines `Symbol.asyncDispose` (as
 * `Symbol.for('nodejs.asyncDispose')`); on an older runtime the same registered symbol keeps
 * our objects disposable by whatever polyfill follows Node's choice.
 */
export const asyncDispose: typeof Symbol.asyncDispose =
  Symbol.asyncDispose ?? (Symbol.for('nodejs.asyncDispose') as typeof Symbol.asyncDispose);

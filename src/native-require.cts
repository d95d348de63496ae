/**
 * `require()` for the optional native packages (better-sqlite3, node-pty), at the point of use.
 *
 * Why a CommonJS file: `AuditLog.open()` is synchronous, and an ES module can only load a
 * package lazily with `await import()`, or with `createRequire(import.meta.url)` — which
 * the CLI bundle (esbuild, `--format=cjs`) turns into `createRequire(undefined)`. Here
 * `require` is real in both worlds (tsc output and the bundle), and esbuild leaves a
 * `require(name)` of a variable alone. So `shellwire exec`, and a library user who never
 * opens the audit log, never load either addon, and need not have them installed.
 */
const nativeRequire = {
  load(name: string): unknown {
    return require(name);
  },
  /** This file (or the bundle it is in): where the packages are looked up from. */
  location: __filename,
};

export = nativeRequire;

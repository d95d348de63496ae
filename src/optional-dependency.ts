/**
 * The daemon's native addons (better-sqlite3 for the audit log, node-pty for terminals) are
 * optional peer dependencies: `npm install shellwire` for a client or library user compiles
 * nothing, and the code that needs one loads it at the point of use. When it cannot load,
 * the caller gets one sentence naming the package and the command that installs it, not a
 * `require` stack.
 */
import { ErrorCode, UsageError } from './errors.js';
import nativeRequire from './native-require.cjs';

/** The optional native packages and what needs each. */
export const OPTIONAL_DEPENDENCIES = {
  'better-sqlite3': "The daemon's audit log",
  'node-pty': 'Running a command on a terminal (tty, exec -t)',
} as const;
export type OptionalDependency = keyof typeof OPTIONAL_DEPENDENCIES;

/**
 * The install command for `name`: global when this copy of shellwire lives in npm's global
 * tree (`PREFIX/lib/node_modules/shellwire`), because Node finds a package installed there
 * from a globally installed shellwire, and a local `npm install` would not.
 */
export function installCommand(name: OptionalDependency, here: string = nativeRequire.location): string {
  return /[/\\]lib[/\\]node_modules[/\\]shellwire[/\\]/.test(here) ? `npm install -g ${name}` : `npm install ${name}`;
}

/** Whether `err` (from `require` or `import()`) says that `name` itself is not installed. */
export function isNotInstalled(err: unknown, name: string): boolean {
  const { code, message } = err as NodeJS.ErrnoException;
  if (code !== 'MODULE_NOT_FOUND' && code !== 'ERR_MODULE_NOT_FOUND') return false;
  // A package that is there but misses one of its own files also throws MODULE_NOT_FOUND;
  // only "Cannot find module 'name'" / "Cannot find package 'name'" mean the package itself.
  return typeof message === 'string' && (message.includes(`'${name}'`) || message.includes(`"${name}"`));
}

/**
 * The error to throw when an optional native package failed to load: not installed (install
 * it), or installed but unusable (an addon built for another Node.js version, a missing
 * shared library: rebuild it). `SW_ERR_MISSING_DEPENDENCY`, the loader's error as `cause`.
 */
export function missingDependencyError(name: OptionalDependency, err: unknown, here?: string): UsageError {
  const needs = OPTIONAL_DEPENDENCIES[name];
  const message = isNotInstalled(err, name)
    ? `${needs} needs the ${name} package, which is not installed: ${installCommand(name, here)}`
    : `${needs} needs the ${name} package, which is installed but did not load (${firstLine(err)}): npm rebuild ${name}, or reinstall it with this Node.js ${process.version}`;
  return new UsageError(ErrorCode.MISSING_DEPENDENCY, message, { cause: err });
}

/** Load the optional package `name` now; throws `missingDependencyError` when it cannot. */
export function loadOptional<T>(name: OptionalDependency): T {
  try {
    return nativeRequire.load(name) as T;
  } catch (err) {
    throw missingDependencyError(name, err);
  }
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n', 1)[0]!.trim();
}

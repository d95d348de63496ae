/**
 * How put and get tell many hosts from one: `TARGETS:PATH`, where TARGETS is a target
 * expression, fans out (files-fanout.ts, loaded only then); anything else is one host.
 * Kept apart from files-fanout.ts so a one-host put does not load the fleet code.
 */
import { isTargetExpression } from '../fleet/resolve-host.js';
import { fail, type ConnectFlags } from './common.js';

export interface FanOutFlags extends ConnectFlags {
  recursive?: boolean;
  resume?: boolean;
  quiet?: boolean;
  limitRate?: string;
  parallel?: string;
  timeout?: string;
  json?: boolean;
}

/** `TARGETS:PATH` split where the targets end; null when `text` is not one (a host or a local path). */
export interface TargetsSpec {
  targets: string;
  path: string;
}

/**
 * `@web:/srv`, `web[01-05]:/srv`, `env=staging,!web03:rel/path`, `a:50007,b:50007:/tmp`: the
 * first colon outside brackets that does not start a `:PORT` (digits followed by `:`, `,` or
 * `&`) ends the targets, as scp's `HOST:PATH` (`@web:123` is the path 123). Null when there is
 * no such colon or what is before it is not a target expression.
 */
export function parseTargetsSpec(text: string): TargetsSpec | null {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '[') depth++;
    else if (ch === ']') depth = Math.max(0, depth - 1);
    else if (ch === ':' && depth === 0 && !/^\d+[:,&]/.test(text.slice(i + 1))) {
      const targets = text.slice(0, i);
      return targets !== '' && isTargetExpression(targets) ? { targets, path: text.slice(i + 1) } : null;
    }
  }
  return null;
}

/** Flags that only mean something for many hosts. */
export function refuseFanOutFlags(flags: FanOutFlags, destination: string): void {
  const given = (['parallel', 'timeout', 'json'] as const).filter((f) => flags[f] !== undefined && flags[f] !== false);
  if (given.length === 0) return;
  fail(`--${given[0]} goes with a target expression (TARGETS:PATH such as @web:/srv or 'web[01-05]:/srv'); "${destination}" names one host.`, 2);
}


/** `put f @web` (no colon): a target expression without a path; say how to write it (also a TARGETS:PATH among one host's sources). */
export function refuseBareTargets(text: string): void {
  if (parseTargetsSpec(text) !== null) fail(`"${text}" names other hosts than the first source; every source of one get comes from the same host or TARGETS.`, 2);
  if (isTargetExpression(text)) fail(`"${text}" names hosts but no path; write TARGETS:PATH, e.g. ${text}:/tmp/ (a local file with such a name: ./${text}).`, 2);
}

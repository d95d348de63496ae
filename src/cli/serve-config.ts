/**
 * `serve.yaml`: every `shellwire serve` flag as a config key, so a deployed daemon's settings
 * live in a file (`/etc/shellwire/serve.yaml` for root, else `<state-dir>/serve.yaml`, or
 * `--config FILE`). Flags given on the command line override the file. Each key is checked
 * by the same parser as its flag, and every error names the file, the line and the key, as
 * users.yaml's do; unknown keys are errors (a typo must not silently fall back to a default).
 *
 *   listen: 0.0.0.0:50007        # or a bare port (50007), ":50007" (all interfaces), "[::]:50007"
 *   maxConnections: 256
 *   killGrace: 5s                # durations: 1.5 (seconds), 500ms, 30s, 2m, 1h
 *   fileRoots: [/srv, /home]
 *   logLevel: info
 *   nats: nats://10.0.0.1:4222,nats://10.0.0.2:4222   # agent mode (docs/nats.md)
 *   labels: role=web,dc=ams
 */
import { BoundedFileError, CONFIG_FILE_LIMIT, readBoundedText } from '../auth/bounded-file.js';
import { networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseDocument, LineCounter } from 'yaml';
import { z } from 'zod';
import { ErrorCode, UsageError } from '../errors.js';
import { parseTarget } from '../client/target.js';
import { DEFAULT_HOST, DEFAULT_PORT } from '../server/server.js';
import { AUDIT_FAILURE_ACTIONS, type AuditFailureAction } from '../audit/daemon-audit.js';
import { LOG_LEVELS, isLogLevel, type LogLevel } from '../log-levels.js';
import { parseDuration, durationForms } from './units.js';
import { parseNatsServers } from '../transport/nats-connect.js';
import { checkNatsPrefix, isAgentName } from '../protocol/nats-subjects.js';

/** Where root's daemon looks for its config when `--config` is not given. */
export const SYSTEM_SERVE_CONFIG = '/etc/shellwire/serve.yaml';
export const SERVE_CONFIG_FILE = 'serve.yaml';

export interface Startups {
  start: number;
  rate: number;
  full: number;
}

/** Every serve setting, parsed. */
export interface ServeSettings {
  /** null: no TCP port (`--no-listen`, `listen: none`; an agent reached only through NATS). */
  listen: { host: string; port: number } | null;
  stateDir: string | undefined;
  maxConnections: number;
  maxChannels: number;
  maxStartups: Startups;
  maxStartupsPerSource: number;
  handshakeTimeoutMs: number;
  killGraceMs: number;
  outputGraceMs: number;
  shutdownGraceMs: number;
  logLevel: LogLevel;
  audit: boolean;
  auditFailure: AuditFailureAction;
  announce: boolean;
  classicPort: number | undefined;
  classicListen: string | undefined;
  fileRoots: string[] | undefined;
  containment: 'auto' | 'cgroup' | 'process-group';
  spawner: 'on' | 'off';
  /** Agent mode (docs/nats.md): the NATS servers to connect out to. */
  nats: string[] | undefined;
  natsCreds: string | undefined;
  natsPrefix: string | undefined;
  /** The agent's name on NATS (default: the host name's first label). */
  name: string | undefined;
  labels: Record<string, string> | undefined;
}

/** A setting's value as given: flag text, or a YAML scalar/list. */
export type RawValue = string | number | boolean | string[];

/** Thrown by a setting's parser; the message says what it takes ("takes …"). */
class BadValue extends Error {}

const text = (v: RawValue): string => (Array.isArray(v) ? v.join(',') : String(v));

function positiveInt(v: RawValue): number {
  const n = Number(text(v));
  if (text(v).trim() === '' || !Number.isSafeInteger(n) || n < 1) throw new BadValue('takes a positive whole number');
  return n;
}

function duration(v: RawValue): number {
  try {
    return Math.round(parseDuration(text(v)));
  } catch {
    throw new BadValue(`takes ${durationForms()}`);
  }
}

function oneOf<T extends string>(choices: readonly T[]) {
  return (v: RawValue): T => {
    if (!(choices as readonly string[]).includes(text(v))) throw new BadValue(`takes ${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}`);
    return text(v) as T;
  };
}

/** `START:RATE:FULL` (sshd's MaxStartups form), or one number N meaning N:100:N. */
export function parseStartups(v: RawValue): Startups {
  const parts = text(v).split(':').map((p) => (p.trim() === '' ? NaN : Number(p)));
  const [start, rate, full] = parts.length === 1 ? [parts[0]!, 100, parts[0]!] : parts;
  const whole = (n: number | undefined) => n !== undefined && Number.isInteger(n) && n >= 0;
  if ((parts.length !== 1 && parts.length !== 3) || !whole(start) || !whole(rate) || !whole(full) || start! < 1 || rate! > 100 || full! < start!) {
    throw new BadValue('takes START:RATE:FULL (e.g. 10:30:100; RATE a percentage, FULL at least START) or one number');
  }
  return { start: start!, rate: rate!, full: full! };
}

/** True when this host has IPv6 at all (then "::" listens on IPv6 and IPv4 alike on Linux). */
function hasIpv6(): boolean {
  return Object.values(networkInterfaces()).some((list) => list?.some((a) => a.family === 'IPv6'));
}

/**
 * Where to listen: `HOST:PORT`, `[IPv6]:PORT`, a bare `HOST` (default port), a bare `PORT`
 * (the default address, 127.0.0.1, on that port: only the port changes), or `:PORT` (every
 * interface, as Go and Docker read it: "::" where the host has IPv6, else 0.0.0.0).
 */
export function parseListen(v: RawValue): { host: string; port: number } | null {
  // `--no-listen` / `listen: none` (or false): no TCP port, for an agent reached through NATS only.
  if (v === false || text(v).trim() === 'none') return null;
  const t = text(v).trim();
  const forms = `takes HOST:PORT, [IPv6]:PORT, PORT (on ${DEFAULT_HOST}) or :PORT (every interface), e.g. 0.0.0.0:${DEFAULT_PORT}`;
  const port = (p: string) => {
    const n = Number(p);
    if (!/^\d+$/.test(p) || n > 65535) throw new BadValue(`${forms}; "${p}" is not a port (0-65535)`);
    return n;
  };
  if (/^\d+$/.test(t)) return { host: DEFAULT_HOST, port: port(t) };
  if (t.startsWith(':') && isIP(t.slice(1)) === 0) return { host: hasIpv6() ? '::' : '0.0.0.0', port: port(t.slice(1)) };
  try {
    const target = parseTarget(t, DEFAULT_PORT, { allowPortZero: true });
    if (target.user !== undefined) throw new BadValue(`${forms}; a listen address has no user@`);
    return { host: target.host, port: target.port };
  } catch (err) {
    if (err instanceof BadValue) throw err;
    throw new BadValue(`${forms} (${(err as Error).message.replace(/\.$/, '')})`);
  }
}

function classicPort(v: RawValue): number {
  const n = Number(text(v));
  if (!/^\d+$/.test(text(v)) || n < 1 || n > 65535) throw new BadValue('takes a port from 1 to 65535');
  return n;
}

function classicListen(v: RawValue): string {
  const t = text(v);
  const host = t.startsWith('[') && t.endsWith(']') ? t.slice(1, -1) : t;
  if (isIP(host) === 0 && !/^[A-Za-z0-9.-]+$/.test(host)) throw new BadValue('takes an address such as 127.0.0.1, 0.0.0.0 or ::1 (the port goes in classicPort/--classic-port)');
  return host;
}

function natsServers(v: RawValue): string[] {
  try {
    return parseNatsServers(Array.isArray(v) ? v : text(v));
  } catch (err) {
    throw new BadValue(`takes NATS server URLs, e.g. nats://10.0.0.1:4222,nats://10.0.0.2:4222 (${(err as Error).message.replace(/\.$/, '')})`);
  }
}

function agentName(v: RawValue): string {
  if (!isAgentName(text(v))) throw new BadValue('takes 1 to 64 of A-Z a-z 0-9 _ - (a NATS subject token: no dots)');
  return text(v);
}

function natsPrefix(v: RawValue): string {
  try {
    return checkNatsPrefix(text(v));
  } catch {
    throw new BadValue('takes dot-separated words of A-Z a-z 0-9 _ - (e.g. shellwire.prod)');
  }
}

/** `k=v,k2=v2` (or a YAML list of `k=v`) → labels. */
export function parseLabels(v: RawValue): Record<string, string> {
  const items = (Array.isArray(v) ? v : text(v).split(',')).map((s) => s.trim()).filter((s) => s !== '');
  const labels: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    if (eq < 1 || !/^[A-Za-z0-9_./-]{1,63}$/.test(key) || value.length > 253 || /[\0,]/.test(value)) {
      throw new BadValue(`takes k=v,k2=v2 (keys of A-Z a-z 0-9 _ . / -), e.g. role=web,dc=ams; "${item}" is not one`);
    }
    // Values go into JSON records and onto operators' terminals: text (valid UTF-8), no controls.
    if (/[\p{Cs}\p{Cc}]/u.test(value)) {
      throw new BadValue(`takes label values of valid UTF-8 text without control characters; the value of "${key}" is not (${JSON.stringify(value).slice(1, -1)})`);
    }
    // As users.yaml refuses a repeated key: the first value would be dropped without a word.
    if (Object.hasOwn(labels, key)) throw new BadValue(`gives the label "${key}" twice ("${labels[key]}" and "${value}"): give each key once`);
    labels[key] = value;
  }
  return labels;
}

function bool(v: RawValue): boolean {
  if (typeof v === 'boolean') return v;
  throw new BadValue('takes true or false');
}

/**
 * Every setting: its config key, its flag, and one parser for both. Adding a serve flag
 * means adding a row here (test/integration/serve-config.test.ts checks that every flag has one).
 */
export const SERVE_SETTINGS = {
  listen: { flag: '--listen', parse: parseListen },
  stateDir: { flag: '--state-dir', parse: (v: RawValue) => resolve(text(v)) },
  maxConnections: { flag: '--max-connections', parse: positiveInt },
  maxChannels: { flag: '--max-channels', parse: positiveInt },
  maxStartups: { flag: '--max-startups', parse: parseStartups },
  maxStartupsPerSource: { flag: '--max-startups-per-source', parse: (v: RawValue) => (text(v) === 'none' ? Number.POSITIVE_INFINITY : positiveInt(v)) },
  handshakeTimeout: { flag: '--handshake-timeout', parse: duration },
  killGrace: { flag: '--kill-grace', parse: duration },
  outputGrace: { flag: '--output-grace', parse: duration },
  shutdownGrace: { flag: '--shutdown-grace', parse: duration },
  logLevel: { flag: '--log-level', parse: (v: RawValue) => (isLogLevel(text(v)) ? text(v) : oneOf(LOG_LEVELS)(v)) as LogLevel },
  audit: { flag: '--no-audit', parse: bool },
  auditFailure: { flag: '--audit-failure', parse: oneOf(AUDIT_FAILURE_ACTIONS) },
  announce: { flag: '--announce', parse: bool },
  classicPort: { flag: '--classic-port', parse: classicPort },
  classicListen: { flag: '--classic-listen', parse: classicListen },
  fileRoots: { flag: '--file-root', parse: (v: RawValue) => (Array.isArray(v) ? v : [text(v)]).map((dir) => resolve(dir)) },
  containment: { flag: '--containment', parse: oneOf(['auto', 'cgroup', 'process-group'] as const) },
  spawner: { flag: '--spawner', parse: oneOf(['on', 'off'] as const) },
  nats: { flag: '--nats', parse: natsServers },
  natsCreds: { flag: '--nats-creds', parse: (v: RawValue) => resolve(text(v)) },
  natsPrefix: { flag: '--nats-prefix', parse: natsPrefix },
  name: { flag: '--name', parse: agentName },
  labels: { flag: '--labels', parse: parseLabels },
} as const;

/** Flags that set another row's key (`--no-listen` is `listen: none`). */
export const SERVE_FLAG_ALIASES: Record<string, SettingKey> = { '--no-listen': 'listen' };

export type SettingKey = keyof typeof SERVE_SETTINGS;

/** Parse one setting; a bad value throws `BadValue`, caught by the caller to say where. */
export function parseSetting<K extends SettingKey>(key: K, value: RawValue): ReturnType<(typeof SERVE_SETTINGS)[K]['parse']> {
  return SERVE_SETTINGS[key].parse(value) as ReturnType<(typeof SERVE_SETTINGS)[K]['parse']>;
}

export function isBadValue(err: unknown): err is Error {
  return err instanceof BadValue;
}

const scalar = z.union([z.string(), z.number()]);
const SCHEMA = z.strictObject({
  listen: z.union([z.string(), z.number(), z.literal(false)]),
  stateDir: z.string(),
  maxConnections: scalar,
  maxChannels: scalar,
  maxStartups: scalar,
  maxStartupsPerSource: scalar,
  handshakeTimeout: scalar,
  killGrace: scalar,
  outputGrace: scalar,
  shutdownGrace: scalar,
  logLevel: z.string(),
  audit: z.boolean(),
  auditFailure: z.string(),
  announce: z.boolean(),
  classicPort: scalar,
  classicListen: z.string(),
  fileRoots: z.array(z.string()),
  containment: z.string(),
  spawner: z.string(),
  nats: z.union([z.string(), z.array(z.string())]),
  natsCreds: z.string(),
  natsPrefix: z.string(),
  name: z.string(),
  labels: z.union([z.string(), z.array(z.string())]),
}).partial();

/** The values the file sets (raw, as a flag would give them) and where it was. */
export interface ServeConfig {
  path: string;
  values: Partial<Record<SettingKey, RawValue>>;
}

/**
 * Read and check a serve.yaml. A missing file is `null` unless `required` (`--config FILE`
 * names one that must exist). Errors are one UsageError listing every problem as
 * `FILE:LINE: key: what it takes, got …`.
 */
export function loadServeConfig(path: string, required: boolean): ServeConfig | null {
  let source: string;
  try {
    source = readBoundedText(path, 'The daemon config', CONFIG_FILE_LIMIT);
  } catch (err) {
    if (err instanceof BoundedFileError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !required) return null;
    throw new UsageError(ErrorCode.BAD_CONFIG, `Cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}.`);
  }
  return { path, values: parseServeConfig(source, path) };
}

export function parseServeConfig(source: string, path: string): Partial<Record<SettingKey, RawValue>> {
  const lines = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lines, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new UsageError(ErrorCode.BAD_CONFIG, doc.errors.map((e) => `${path}:${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`).join('\n'));
  }
  const lineOf = (key: string | undefined): string => {
    const node = (key === undefined ? doc.contents : doc.getIn([key], true)) as { range?: [number, number, number] } | null | undefined;
    // A key's line is where its value starts; for a missing value, where the document does.
    const offset = node?.range?.[0] ?? (doc.contents as { range?: [number] } | null)?.range?.[0];
    return offset === undefined ? '' : `:${lines.linePos(offset).line}`;
  };
  const root: unknown = doc.toJS() ?? {};
  if (typeof root !== 'object' || root === null || Array.isArray(root)) {
    throw new UsageError(ErrorCode.BAD_CONFIG, `${path}${lineOf(undefined)}: the file must be a mapping of settings (key: value), e.g. "listen: 0.0.0.0:${DEFAULT_PORT}"`);
  }
  const messages: string[] = [];
  const known = Object.keys(SERVE_SETTINGS).join(', ');
  const shape = SCHEMA.safeParse(root);
  const badKeys = new Set<string>();
  if (!shape.success) {
    for (const issue of shape.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          badKeys.add(key);
          messages.push(`${path}${lineOf(key)}: ${key}: unknown setting (known: ${known})`);
        }
      } else {
        const key = String(issue.path[0]);
        badKeys.add(key);
        messages.push(`${path}${lineOf(key)}: ${key}: ${describeType(key)}, got ${JSON.stringify((root as Record<string, unknown>)[key])}`);
      }
    }
  }
  const values: Partial<Record<SettingKey, RawValue>> = {};
  for (const [key, value] of Object.entries(root as Record<string, RawValue>)) {
    if (badKeys.has(key) || !(key in SERVE_SETTINGS)) continue;
    try {
      parseSetting(key as SettingKey, value);
      values[key as SettingKey] = value;
    } catch (err) {
      if (!isBadValue(err)) throw err;
      messages.push(`${path}${lineOf(key)}: ${key}: ${err.message}, got ${JSON.stringify(value)}`);
    }
  }
  if (messages.length > 0) throw new UsageError(ErrorCode.BAD_CONFIG, messages.join('\n'));
  return values;
}

function describeType(key: string): string {
  if (key === 'audit' || key === 'announce') return 'takes true or false';
  if (key === 'fileRoots') return 'takes a list of directories, e.g. [/srv, /home]';
  if (key === 'nats') return 'takes NATS server URLs, as a string or a list';
  if (key === 'labels') return 'takes "k=v,k2=v2" or a list of k=v';
  if (key === 'listen') return 'takes an address, a port, or none';
  if (key === 'stateDir' || key === 'natsCreds' || key === 'natsPrefix' || key === 'name' || key === 'logLevel' || key === 'auditFailure' || key === 'containment' || key === 'spawner' || key === 'classicListen') return 'takes a string';
  return 'takes a number or a string';
}

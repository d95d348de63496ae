/**
 * `shellwire keygen`, `user add|list|remove|passwd`, `key add`, `token create|revoke`:
 * manage users.yaml without hand-editing; the running daemon reloads by itself (SIGHUP).
 */
import { existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { BoundedFileError, KEY_FILE_LIMIT, readBoundedText } from '../auth/bounded-file.js';
import { dirname, join } from 'node:path';
import { hostname, userInfo } from 'node:os';
import type { Command } from 'commander';
import { escapeControls } from '../client/display-text.js';
import { defaultServerStateDir, shellwireHome } from '../auth/paths.js';
import { generateKeyPair, isPrivateKeyText, KEYGEN_TYPES, parsePublicKey, type KeygenType } from '../auth/ssh-key.js';
import { hashPassword } from '../auth/password.js';
import { gatewayPolicyOf, loadUsersConfig, type UsersConfig, type UsersConfigOptions } from '../auth/users-config.js';
import { defaultGatewayStateDir, gatewayKeyPath } from '../gateway/gateway-config.js';
import { addKey, addUser, checkUserName, createToken, removeUser, requireStateDir, revokeToken, setPassword, signalDaemonReload } from '../auth/users-store.js';
import { stateDirExposure } from '../auth/state-dir-exposure.js';
import { fail } from './common.js';
import { EXPIRY_FORMS, parseExpiry } from './units.js';
import { readSecretLine } from './prompt.js';

interface StateFlags {
  stateDir?: string;
  gateway?: boolean;
}

const stateDirOption = ['--state-dir <dir>', 'the daemon\'s or gateway\'s state dir (default $SHELLWIRE_HOME/server; with --gateway $SHELLWIRE_HOME/gateway)'] as const;
const gatewayOption = ['--gateway', 'edit a gateway\'s users.yaml (shellwire gateway; found by itself in a state dir holding the gateway key)'] as const;

const repeatable = (v: string, acc: string[]) => [...acc, v];

function stateDirOf(flags: StateFlags): string {
  return flags.stateDir ?? (flags.gateway ? defaultGatewayStateDir() : defaultServerStateDir());
}

/**
 * Whose users.yaml: a gateway's when asked (--gateway) or when the state dir holds the
 * gateway's key (gateway_ed25519: only `shellwire gateway` makes it). It is then checked by the
 * gateway's rules (operators' hosts, as, record) and the running gateway is told to reload.
 */
function kindOf(flags: StateFlags): UsersConfigOptions {
  return flags.gateway || existsSync(gatewayKeyPath(stateDirOf(flags))) ? { gateway: true } : {};
}

/** "daemon" or "gateway", for messages. */
function serverWord(flags: StateFlags): string {
  return kindOf(flags).gateway ? 'gateway' : 'daemon';
}

interface AddFlags {
  key: string[];
  runAs?: string;
  allowRoot?: boolean;
  home?: string;
  channels?: string;
  allow: string[];
  deny: string[];
  fileRoot: string[];
}

function existingStateDir(flags: StateFlags): string {
  const dir = stateDirOf(flags);
  requireStateDir(dir);
  return dir;
}

/** Run an edit; report errors as one clear message; tell the daemon (or gateway) to reload. */
function edit(flags: StateFlags, what: string, change: (stateDir: string, kind: UsersConfigOptions) => UsersConfig | void): void {
  const stateDir = stateDirOf(flags);
  const word = serverWord(flags);
  try {
    change(stateDir, kindOf(flags));
  } catch (err) {
    fail((err as Error).message, 1);
  }
  const reloaded = signalDaemonReload(stateDir);
  process.stderr.write(`${what}${reloaded ? `; the running ${word} reloaded its users` : ` (no running ${word} found; it takes effect at its next start)`}\n`);
}

/** Say (on stderr, before the change is reported) when the new user can read the daemon's token. */
function warnExposure(stateDir: string, name: string, config: UsersConfig): UsersConfig {
  const user = config.users.get(name);
  const warning = user ? stateDirExposure(user, stateDir) : null;
  if (warning) process.stderr.write(`warning: ${warning}\n`);
  return config;
}

/** A public key from a .pub file, or given as the key line itself; a private key is refused with the fix. */
function readPublicKeyFile(path: string): string {
  let text = path;
  // A key line or key text has spaces or newlines; a name without them is a file.
  if (existsSync(path) || !(/\s/.test(path.trim()) || isPrivateKeyText(path))) {
    try {
      text = readBoundedText(path, 'Public key file', KEY_FILE_LIMIT).trim();
    } catch (err) {
      if (err instanceof BoundedFileError) fail(err.message, 1);
      fail(`Cannot read public key ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`, 1);
    }
  }
  try {
    return parsePublicKey(text, text === path ? 'key' : path).line;
  } catch (err) {
    fail((err as Error).message, 1);
  }
}

export function registerUsers(program: Command): void {
  program
    .command('keygen')
    .description('make a key pair in OpenSSH format (default Ed25519 in $SHELLWIRE_HOME/id_ed25519)')
    .option('-t, --type <type>', `key type: ${KEYGEN_TYPES.join(', ')}`, 'ed25519')
    .option('-b, --bits <bits>', 'key size: ECDSA 256, 384 or 521 (default 256); RSA 1024-16384 (default 3072)')
    .option('-f, --file <path>', 'private key file (the public key goes to FILE.pub; default $SHELLWIRE_HOME/id_TYPE)')
    .option('-C, --comment <text>', 'comment stored in the key', `${userInfo().username}@${hostname()}`)
    .option('--force', 'overwrite an existing key')
    .action((flags: { type: string; bits?: string; file?: string; comment: string; force?: boolean }) => {
      const type = flags.type.toLowerCase() as KeygenType;
      if (!KEYGEN_TYPES.includes(type)) fail(`Unknown key type "${flags.type}"; use one of: ${KEYGEN_TYPES.join(', ')}.`, 2);
      const file = flags.file ?? join(shellwireHome(), `id_${type}`);
      if (existsSync(file) && !flags.force) fail(`${file} already exists; pass --force to replace it (the old key stops working).`, 1);
      let pair;
      try {
        pair = generateKeyPair(flags.comment, type, flags.bits === undefined ? undefined : Number(flags.bits));
      } catch (err) {
        fail((err as Error).message, 2);
      }
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      writeFileSync(file, pair.privateText, { mode: 0o600 });
      writeFileSync(`${file}.pub`, pair.publicLine + '\n', { mode: 0o644 });
      process.stdout.write(`Private key: ${file}\nPublic key:  ${file}.pub\nFingerprint: ${pair.fingerprint}\n` +
        `Authorize it on a daemon host with: shellwire user add NAME --key ${file}.pub\n`);
    });

  const user = program.command('user').description('manage the daemon\'s (or a gateway\'s) users (users.yaml in its state dir)');
  user
    .command('add')
    .description('add a user: keys, the OS account to run as, home, channels, command rules, file roots (users.yaml keys in brackets)')
    .argument('<name>')
    .option('--key <pubkeyfile>', 'authorize this OpenSSH public key (repeatable) [keys]', repeatable, [] as string[])
    .option('--run-as <account>', 'OS account the user\'s commands run as (the daemon must be root) [runAs]')
    .option('--allow-root', 'allow running as root [allowRoot]')
    .option('--home <dir>', 'where commands start and relative paths point (default: the account\'s home) [home]')
    .option('--channels <list>', 'channel kinds allowed, comma-separated: exec,session,pty,file (default: all; exec,file with --allow/--deny) [channels]')
    .option('--allow <rule>', 'allow only commands matching RULE, e.g. "git status" or "ls ..." (repeatable; makes a restricted user) [commands.allow]', repeatable, [] as string[])
    .option('--deny <rule>', 'refuse commands matching RULE (repeatable; advisory, see docs/policy.md) [commands.deny]', repeatable, [] as string[])
    .option('--file-root <dir>', 'a directory file transfers may use (repeatable; default: any path, or the home for restricted users) [fileRoots]', repeatable, [] as string[])
    .option(...stateDirOption)
    .option(...gatewayOption)
    .action((name: string, flags: StateFlags & AddFlags) => {
      try {
        checkUserName(name);
        requireStateDir(stateDirOf(flags));
      } catch (err) {
        fail((err as Error).message, 2);
      }
      const keys = flags.key.map(readPublicKeyFile);
      edit(flags, `added user ${name}`, (dir, kind) => warnExposure(dir, name, addUser(dir, name, {
        keys,
        ...(flags.runAs ? { runAs: flags.runAs } : {}),
        ...(flags.allowRoot ? { allowRoot: true } : {}),
        ...(flags.home !== undefined ? { home: flags.home } : {}),
        ...(flags.channels !== undefined ? { channels: flags.channels.split(',').map((c) => c.trim()).filter((c) => c !== '') } : {}),
        allow: flags.allow,
        deny: flags.deny,
        fileRoots: flags.fileRoot,
      }, kind)));
    });
  user
    .command('remove')
    .description('remove a user and all their keys and tokens')
    .argument('<name>')
    .option(...stateDirOption)
    .option(...gatewayOption)
    .action((name: string, flags: StateFlags) => edit(flags, `removed user ${name}`, (dir, kind) => removeUser(dir, name, kind)));
  user
    .command('passwd')
    .description('set a user\'s password (password login must be on: settings.passwordLogin: true)')
    .argument('<name>')
    .option(...stateDirOption)
    .option(...gatewayOption)
    .action(async (name: string, flags: StateFlags) => {
      // Ask nothing that cannot be used: the state dir and the user come first.
      let config: UsersConfig;
      try {
        config = loadUsersConfig(existingStateDir(flags), kindOf(flags));
        if (!config.users.has(name)) fail(`No user "${name}"; add it with: shellwire user add ${name}`, 1);
      } catch (err) {
        fail((err as Error).message, 1);
      }
      let password: string;
      try {
        password = await readSecretLine(`New password for ${name}: `);
      } catch (err) {
        fail((err as Error).message, 1);
      }
      if ([...password].length < 8) fail('Passwords must have at least 8 characters.', 1);
      const hash = await hashPassword(password);
      edit(flags, `password set for ${name}`, (dir, kind) => setPassword(dir, name, hash, kind));
      // The hash is stored either way (so turning password login on later needs no second
      // passwd), but a silent success would read as "bob can log in now".
      if (!config.passwordLogin) {
        process.stderr.write(
          `note: password login is off on this ${serverWord(flags)}, so this password is not accepted yet. To turn it on, set in ${config.path ?? join(stateDirOf(flags), 'users.yaml')}:\n` +
            '  settings:\n    passwordLogin: true\n' +
            `then reload the ${serverWord(flags)} (systemctl reload, or kill -HUP its PID).\n`,
        );
      }
    });
  user
    .command('list')
    .description('list users: OS account, channels, keys, tokens')
    .option('--json', 'JSON output')
    .option(...stateDirOption)
    .option(...gatewayOption)
    .action((flags: StateFlags & { json?: boolean }) => {
      let config: UsersConfig;
      const kind = kindOf(flags);
      try {
        config = loadUsersConfig(existingStateDir(flags), kind);
      } catch (err) {
        fail((err as Error).message, 1);
      }
      const rows = [...config.users.values()].map((u) => ({
        name: u.name,
        runAs: u.account.name,
        home: u.home,
        channels: [...u.channels],
        keys: u.keys.map((k) => `${k.fingerprint} ${k.comment}`.trim()),
        tokens: u.tokens.map((t) => `${t.name}${t.expires ? ` (expires ${t.expires.toISOString()})` : ''}`),
        password: u.passwordHash !== null,
        commandRules: u.allow !== null || u.deny.length > 0,
        ...(kind.gateway ? { hosts: [...gatewayPolicyOf(u).hosts], as: gatewayPolicyOf(u).as } : {}),
      }));
      if (flags.json) {
        for (const row of rows) process.stdout.write(JSON.stringify(row) + '\n');
        return;
      }
      if (rows.length === 0) {
        process.stdout.write('No users yet (only the daemon token works). Add one with: shellwire user add NAME --key KEY.pub\n');
        return;
      }
      for (const row of rows) {
        const where = row.hosts ? `hosts ${row.hosts.join(',') || '(none)'}  as ${row.as}` : `runs as ${row.runAs}  home ${row.home}`;
        process.stdout.write(escapeControls(`${row.name}  ${where}  channels ${row.channels.join(',')}${row.commandRules ? '  (command rules)' : ''}${row.password ? '  (password)' : ''}\n`));
        for (const key of row.keys) process.stdout.write(escapeControls(`  key   ${key}\n`));
        for (const token of row.tokens) process.stdout.write(`  token ${token}\n`);
      }
    });

  program
    .command('key')
    .description('manage a user\'s keys')
    .command('add')
    .description('authorize an OpenSSH public key (Ed25519, ECDSA or RSA) for a user')
    .argument('<user>')
    .argument('<pubkeyfile>', 'the .pub file, or the key line itself')
    .option(...stateDirOption)
    .option(...gatewayOption)
    .action((name: string, file: string, flags: StateFlags) => {
      const line = readPublicKeyFile(file);
      edit(flags, `authorized key for ${name}`, (dir, kind) => addKey(dir, name, line, kind));
    });

  const token = program.command('token').description('manage access tokens for automation');
  token
    .command('create')
    .description('make a token that acts as USER; it is printed once (only its hash is stored)')
    .requiredOption('--user <name>', 'the user the token acts as')
    .option('--name <name>', 'a name to revoke it by (default token-N)')
    .option('--expires <when>', `when it stops working: ${EXPIRY_FORMS}; default never`)
    .option(...stateDirOption)
    .option(...gatewayOption)
    .action((flags: StateFlags & { user: string; name?: string; expires?: string }) => {
      let made: { token: string; name: string } | undefined;
      const expires = flags.expires ? safeExpiry(flags.expires) : undefined;
      edit(flags, `created token`, (dir, kind) => {
        made = createToken(dir, flags.user, { ...(flags.name ? { name: flags.name } : {}), ...(expires ? { expires } : {}) }, kind);
        return undefined;
      });
      process.stderr.write(`token "${made!.name}" for ${flags.user}${expires ? `, expires ${expires.toISOString()}` : ''}; store it now, it is not shown again:\n`);
      process.stdout.write(made!.token + '\n');
    });
  token
    .command('revoke')
    .description('revoke a user\'s token by name; connections that used it stay open until they close')
    .requiredOption('--user <name>')
    .argument('<tokenname>')
    .option(...stateDirOption)
    .option(...gatewayOption)
    .action((name: string, flags: StateFlags & { user: string }) => edit(flags, `revoked token ${name} of ${flags.user}`, (dir, kind) => revokeToken(dir, flags.user, name, kind)));
}

function safeExpiry(text: string): Date {
  try {
    return parseExpiry(text);
  } catch (err) {
    fail(`--expires ${(err as Error).message}, got "${text}".`, 2);
  }
}

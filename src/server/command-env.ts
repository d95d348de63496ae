import { userInfo, homedir } from 'node:os';
import { hasCommandRules } from '../auth/policy.js';
import type { UserPolicy } from '../auth/users-config.js';
import { RESTRICTED_PATH } from '../process/command-words.js';

/** What a login on another account gets from the daemon's environment: locale and time zone. */
const LOGIN_ENV_NAMES = /^(LANG|LANGUAGE|LC_[A-Z_]+|TZ)$/;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The environment a command of another OS account (runAs) starts from: a fresh login's, as
 * sshd gives — PATH, the system locale and time zone — never the daemon's own variables
 * (credentials from a unit file, the shell that started it). `HOME`, `USER`, `LOGNAME` and
 * `SHELL` are filled in for the account by the caller.
 */
export function loginBaseEnv(daemonEnv: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = { PATH: DEFAULT_PATH };
  for (const [name, value] of Object.entries(daemonEnv)) if (LOGIN_ENV_NAMES.test(name)) env[name] = value;
  return env;
}

/**
 * The environment commands of the daemon's own account start from: the daemon's, minus its own
 * secrets, plus login basics. (That account can read the daemon's environment in /proc anyway;
 * other accounts get `loginBaseEnv`.)
 */
export function commandBaseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || name.startsWith('SHELLWIRE_') || name.startsWith('npm_')) continue;
    env[name] = value;
  }
  const user = userInfo();
  env.HOME = homedir();
  env.USER = user.username;
  env.LOGNAME = user.username;
  env.SHELL = '/bin/sh';
  env.PATH ??= DEFAULT_PATH;
  return env;
}

/**
 * The environment `user`'s commands start from, with their account filled in: another
 * account never sees the daemon's variables, only what a fresh login would; restricted
 * commands find their helpers in the PATH the daemon controls, not the daemon's own.
 */
export function userBaseEnv(daemonEnv: Record<string, string>, user: UserPolicy): Record<string, string> {
  const account = user.account;
  const base = user.switchAccount ? loginBaseEnv(daemonEnv) : daemonEnv;
  const env: Record<string, string> = { ...base, HOME: account.home, USER: account.name, LOGNAME: account.name, SHELL: account.shell };
  if (hasCommandRules(user)) env.PATH = RESTRICTED_PATH;
  return env;
}

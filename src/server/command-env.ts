import { userInfo, homedir } from 'node:os';

/** The environment commands start from: the daemon's, minus its own secrets, plus login basics. */
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
  env.PATH ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return env;
}

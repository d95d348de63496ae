/**
 * `shellwire web-login --via GW`: a one-time link to the gateway's web console (docs/web.md),
 * for the operator who runs it and the login she uses here. The URL goes to stdout (one
 * line, for her to open; its token is in the fragment, never sent to a server), when it
 * expires to stderr. The link works once, within a minute.
 */
import type { Command } from 'commander';
import { connectFromFlags, fail } from './common.js';

interface WebLoginFlags {
  via?: string;
  identity?: string;
  password?: boolean;
  tokenFile?: string;
  acceptNewHost?: boolean;
  connectTimeout?: string;
}

export function registerWebLogin(program: Command): void {
  program
    .command('web-login')
    .description("print a one-time link to the gateway's web console (works once, within a minute) for the operator logging in here")
    .option('-J, --via <gateway>', 'the gateway ([USER@]GW[:PORT]) whose web console to log in to')
    .option('-i, --identity <keyfile>', 'your OpenSSH private key for the gateway (default: ssh-agent, then ~/.ssh keys)')
    .option('--password', 'log in to the gateway with a password')
    .option('--token-file <file>', 'read the gateway access token from FILE')
    .option('--accept-new-host', 'trust and remember a gateway not yet in known_hosts')
    .option('--connect-timeout <duration>', 'give up connecting after this long (seconds, or 500ms, 1m)', '10')
    .action((flags: WebLoginFlags) => webLogin(flags));
}

async function webLogin(flags: WebLoginFlags): Promise<void> {
  if (flags.via === undefined) fail('web-login needs the gateway: shellwire web-login --via [USER@]GW[:PORT]', 2);
  const conn = await connectFromFlags(flags.via, flags, { gateway: true });
  let answer: { url?: unknown; expiresAt?: unknown };
  try {
    answer = JSON.parse((await conn.gatewayRequest({ op: 'web-login' })).toString('utf8')) as typeof answer;
  } finally {
    await conn.close();
  }
  if (typeof answer.url !== 'string' || typeof answer.expiresAt !== 'string') fail(`${flags.via} answered web-login without a link; is it a shellwire gateway with --web?`, 1);
  process.stdout.write(`${answer.url}\n`);
  process.stderr.write(`One-time link: open it within a minute (until ${answer.expiresAt}); it works once.\n`);
}

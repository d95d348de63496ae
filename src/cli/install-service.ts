/**
 * `shellwire install-service`: write a systemd unit that runs this shellwire as the daemon
 * (`--print` shows it instead). Every choice in the unit is explained in the unit itself,
 * where the operator who reads it later will look.
 */
import type { Command } from 'commander';
import { mkdirSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fail } from './common.js';
import { SYSTEM_SERVE_CONFIG } from './serve-config.js';

export const DEFAULT_UNIT_DIR = '/etc/systemd/system';
export const DEFAULT_UNIT_NAME = 'shellwire.service';
export const DEFAULT_SERVICE_STATE_DIR = '/var/lib/shellwire';

interface InstallFlags {
  print?: boolean;
  unitDir: string;
  name: string;
  stateDir: string;
  config?: string;
}

export function registerInstallService(program: Command): void {
  program
    .command('install-service')
    .description('write a systemd unit that runs this shellwire as the daemon (then: systemctl daemon-reload && systemctl enable --now shellwire)')
    .option('--print', 'print the unit on stdout and write nothing')
    .option('--unit-dir <dir>', 'where to write the unit', DEFAULT_UNIT_DIR)
    .option('--name <unit>', 'unit file name', DEFAULT_UNIT_NAME)
    .option('--state-dir <dir>', 'the daemon\'s state dir (identity, token, users.yaml, audit log)', DEFAULT_SERVICE_STATE_DIR)
    .option('--config <file>', `the daemon's settings file; it must exist (default: ${SYSTEM_SERVE_CONFIG}, read when it exists, else built-in defaults)`)
    .action((flags: InstallFlags) => runInstall(flags));
}

/**
 * The command line systemd runs: absolute node and script, so PATH and nvm do not matter.
 * `--config` only when install-service was given one: the daemon reads the default file
 * when it exists and runs on defaults when it does not, so the unit starts out of the box.
 */
export function serviceExecStart(stateDir: string, config: string | undefined): string {
  const script = realpathSync(process.argv[1] ?? 'shellwire');
  const words = [process.execPath, script, 'serve', '--state-dir', stateDir, ...(config === undefined ? [] : ['--config', config])];
  return words.map(quoteForSystemd).join(' ');
}

/**
 * systemd's ExecStart quoting: plain words as they are; others in double quotes with `\\`
 * and `"` escaped. In every word `%` is doubled (systemd expands `%n`, `%h`, … specifiers
 * everywhere in ExecStart, quoted or not) and `$` is doubled (environment expansion).
 */
function quoteForSystemd(word: string): string {
  if (/^[A-Za-z0-9_@+=:,./-]+$/.test(word)) return word;
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$/g, '$$$$').replace(/%/g, '%%')}"`;
}

/**
 * `StateDirectory=` for a state dir under /var/lib, so systemd creates it (0700) and knows
 * it is the service's. Only for plain names: the directive is a space-separated list with
 * specifier expansion, so "/var/lib/sw dir" would name two directories. Other state dirs get
 * none; the daemon creates its state dir itself (0700) at its first start.
 */
export function stateDirectoryDirective(stateDir: string): string | undefined {
  if (!stateDir.startsWith('/var/lib/')) return undefined;
  const name = stateDir.slice('/var/lib/'.length).replace(/\/+$/, '');
  return /^[A-Za-z0-9_.@-]+(\/[A-Za-z0-9_.@-]+)*$/.test(name) && !name.split('/').some((part) => part === '.' || part === '..') ? name : undefined;
}

/** A path the unit names: absolute (systemd's cwd is `/`, not the installer's), one line. */
function unitPath(path: string, flag: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) fail(`${flag} ${JSON.stringify(path)} has a control character (a newline, a tab, …); a systemd unit cannot name it. Choose another path.`, 2);
  return resolve(path);
}

export function renderUnit(options: { execStart: string; stateDir: string; config: string | undefined }): string {
  const stateDirectory = stateDirectoryDirective(options.stateDir);
  const settings = options.config ?? `${SYSTEM_SERVE_CONFIG} (optional: without it the daemon runs on defaults, on 127.0.0.1 only)`;
  return `# shellwire daemon, written by \`shellwire install-service\`. Settings: ${settings}
# (every \`shellwire serve\` flag has a key there; at least \`listen: :50007\` to serve the network).
[Unit]
Description=shellwire remote command daemon
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=${options.execStart}
# SIGHUP re-reads users.yaml and the host key (after \`shellwire rotate-host-key\`), without
# dropping connections or commands.
ExecReload=/bin/kill -HUP $MAINPID

# Restart after a crash, not after a clean stop or a usage error in serve.yaml (exit 2 would
# only fail again; \`journalctl -u shellwire\` shows the line to fix). A crashed daemon's
# commands are killed by its supervisor and recorded as lost at the next start
# (docs/processes.md), and its stale daemon.pid does not block the restart.
Restart=on-failure
RestartPreventExitStatus=2
RestartSec=2s

# Stopping. The daemon stops itself gracefully on SIGTERM: no new commands, running ones get
# --shutdown-grace (10 s) to finish, then are killed (SIGTERM, SIGKILL after --kill-grace),
# their audit end rows are written and their cgroups removed. So:
# - KillMode=mixed: SIGTERM goes to the daemon ALONE. With the default (control-group) every
#   user's command would get SIGTERM at the same instant, with no grace and no audit row
#   saying why. After the daemon has exited, systemd SIGKILLs what is still in the unit's
#   cgroup: processes a command left behind on purpose (\`nohup job &\`, which the daemon
#   "releases" into its own cgroup, as sshd keeps them) end with the service. A job that must
#   outlive a daemon restart belongs in its own unit: \`systemd-run --unit=job …\`.
#   (KillMode=process, as sshd.service uses, would leave those jobs running but untracked
#   in this unit's cgroup, and systemd warns about them at every start: sshd's sessions live
#   in logind scopes of their own, shellwire's commands do not.)
# - TimeoutStopSec above shutdown grace + kill grace + slack (10 + 2 + 5 s), so systemd's
#   SIGKILL never cuts the graceful stop short. Raise both together.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=30s
# The daemon makes a cgroup per command under its own (docs/processes.md); Delegate=yes tells
# systemd that this subtree is the daemon's, so systemd neither moves those processes nor
# removes those cgroups behind its back.
Delegate=yes

# State and settings directories, created by systemd with these modes${stateDirectory === undefined ? `
# (the state dir ${options.stateDir} is made by the daemon itself, 0700, at its first start)` : ''}.
${stateDirectory === undefined ? '' : `StateDirectory=${stateDirectory}\nStateDirectoryMode=0700\n`}ConfigurationDirectory=shellwire
LimitNOFILE=65536

# Hardening, and why most of the usual list is NOT here: whatever restricts this service
# restricts every command users run through it, since commands are its children.
# - User=root: the daemon switches to each user's OS account (users.yaml runAs, via setpriv).
# - NoNewPrivileges is off: it would stop sudo, su, ping, passwd (setuid programs) in every
#   command, as it is inherited across exec. The daemon drops privileges itself per user.
# - No PrivateTmp: commands need the real /tmp, shared with the users' other sessions.
# - No ProtectSystem/ProtectHome/ReadOnlyPaths: commands may legitimately write /etc, /usr,
#   /home (that is what an operator runs them for); file transfers are bounded by users.yaml
#   fileRoots instead (docs/policy.md).
# - No PrivateDevices, ProtectKernel*, ProtectClock, RestrictNamespaces, SystemCallFilter:
#   each would silently break some administrative command (mount, modprobe, date -s, unshare).
# The trust boundary is users.yaml (who may run what, as whom), as sshd_config is sshd's.
# A daemon that serves only its own account (no runAs users) may be run hardened, e.g.:
#   User=shellwire
#   NoNewPrivileges=yes
#   ProtectSystem=strict
#   ReadWritePaths=${options.stateDir}
#   PrivateTmp=yes
User=root

[Install]
WantedBy=multi-user.target
`;
}

function runInstall(flags: InstallFlags): void {
  const stateDir = unitPath(flags.stateDir, '--state-dir');
  const config = flags.config === undefined ? undefined : unitPath(flags.config, '--config');
  // A named settings file must be there: the daemon refuses a missing --config (exit 2, which
  // the unit does not restart after), so the mistake is reported now, not at enable --now.
  if (config !== undefined) {
    try {
      if (!statSync(config).isFile()) fail(`--config ${config} is not a file.`, 2);
    } catch (err) {
      fail(`--config ${config}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}. Write it first, or leave out --config (the daemon then reads ${SYSTEM_SERVE_CONFIG} when it exists).`, 2);
    }
  }
  const unit = renderUnit({ execStart: serviceExecStart(stateDir, config), stateDir, config });
  if (flags.print) {
    process.stdout.write(unit);
    return;
  }
  if (!/^[A-Za-z0-9@._-]+\.service$/.test(flags.name)) fail(`--name takes a unit file name ending in .service, got "${flags.name}".`, 2);
  const path = join(flags.unitDir, flags.name);
  try {
    mkdirSync(flags.unitDir, { recursive: true });
    writeFileSync(path, unit, { mode: 0o644 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    fail(`Cannot write ${path}: ${code === 'EACCES' || code === 'EPERM' ? 'permission denied (run it as root, or --print it and install it yourself)' : (err as Error).message}.`, 1);
  }
  const unitName = flags.name.replace(/\.service$/, '');
  process.stdout.write(
    [
      `wrote ${path}`,
      config !== undefined ? `settings: ${config}`
        : isFile(SYSTEM_SERVE_CONFIG) ? `settings: ${SYSTEM_SERVE_CONFIG}`
        : `settings: none yet (the daemon serves 127.0.0.1:50007 only); write at least "listen: :50007" in ${SYSTEM_SERVE_CONFIG} to serve the network`,
      `next: systemctl daemon-reload && systemctl enable --now ${unitName}`,
      `then: journalctl -u ${unitName} (logs), systemctl reload ${unitName} (re-read users.yaml and the host key)`,
      '',
    ].join('\n'),
  );
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

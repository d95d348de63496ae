/**
 * `shellwire install-service`: write a systemd unit that runs this shellwire as the daemon
 * (`--print` shows it instead). Every choice in the unit is explained in the unit itself,
 * where the operator who reads it later will look.
 */
import type { Command } from 'commander';
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
  config: string;
}

export function registerInstallService(program: Command): void {
  program
    .command('install-service')
    .description('write a systemd unit that runs this shellwire as the daemon (then: systemctl daemon-reload && systemctl enable --now shellwire)')
    .option('--print', 'print the unit on stdout and write nothing')
    .option('--unit-dir <dir>', 'where to write the unit', DEFAULT_UNIT_DIR)
    .option('--name <unit>', 'unit file name', DEFAULT_UNIT_NAME)
    .option('--state-dir <dir>', 'the daemon\'s state dir (identity, token, users.yaml, audit log)', DEFAULT_SERVICE_STATE_DIR)
    .option('--config <file>', 'the daemon\'s settings file (serve.yaml)', SYSTEM_SERVE_CONFIG)
    .action((flags: InstallFlags) => runInstall(flags));
}

/** The command line systemd runs: absolute node and script, so PATH and nvm do not matter. */
export function serviceExecStart(stateDir: string, config: string): string {
  const script = realpathSync(process.argv[1] ?? 'shellwire');
  return [process.execPath, script, 'serve', '--state-dir', stateDir, '--config', config].map(quoteForSystemd).join(' ');
}

/** systemd's ExecStart quoting: words with spaces or quotes in double quotes, `\` and `"` escaped. */
function quoteForSystemd(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$/g, '$$$$').replace(/%/g, '%%')}"`;
}

export function renderUnit(options: { execStart: string; stateDir: string; config: string }): string {
  return `# shellwire daemon, written by \`shellwire install-service\`. Settings: ${options.config}
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

# State and settings directories, created by systemd with these modes.
${options.stateDir.startsWith('/var/lib/') ? `StateDirectory=${options.stateDir.slice('/var/lib/'.length)}\nStateDirectoryMode=0700\n` : ''}ConfigurationDirectory=shellwire
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
  const unit = renderUnit({ execStart: serviceExecStart(flags.stateDir, flags.config), stateDir: flags.stateDir, config: flags.config });
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
      existsSync(flags.config) ? `settings: ${flags.config}` : `settings: ${flags.config} does not exist yet; write at least "listen: :50007" there to serve the network`,
      `next: systemctl daemon-reload && systemctl enable --now ${unitName}`,
      `then: journalctl -u ${unitName} (logs), systemctl reload ${unitName} (re-read users.yaml and the host key)`,
      '',
    ].join('\n'),
  );
}

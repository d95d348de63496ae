/**
 * Examples for `--help` and the man page, by command path. They live in one table (rather
 * than in each command's module) so the help, the man page's EXAMPLES and the test that
 * every command has one read the same place; `addExamples` attaches them after the
 * commands registered themselves.
 */
import type { Command } from 'commander';

const EXAMPLES: Record<string, string[]> = {
  '': [
    'shellwire serve                               # start the daemon (key, certificate, token on first start)',
    'shellwire exec web01 -- uname -a              # run one command',
    'shellwire run @web -- systemctl is-active nginx',
  ],
  serve: [
    'shellwire serve --listen 0.0.0.0:50007',
    'shellwire serve --state-dir /var/lib/shellwire --log-level warn',
    'shellwire serve --no-listen --nats nats://10.0.0.1:4222,nats://10.0.0.2:4222 --labels role=web,group=web   # an agent: connects out, no port',
  ],
  gateway: [
    'shellwire gateway --listen 0.0.0.0:50008 --inventory /etc/shellwire/hosts.yaml',
    'shellwire gateway --print-key                 # the line for each host\'s users.yaml (with actAs)',
    'shellwire gateway --web 8443                  # plus the web console on https://127.0.0.1:8443/',
  ],
  exec: [
    'shellwire exec localhost -- uname -a',
    'shellwire exec --timeout 30 -i ~/.ssh/id_ed25519 alice@web01:50007 -- make test',
    'tar cz src | shellwire exec web01 -- tar xz -C /srv/app   # stdin flows to the command',
    'shellwire exec --via alice@bastion web01 -- uptime   # through a gateway (ssh -J)',
    'shellwire exec --via nats://10.0.0.1:4222 web01 -- uptime   # to the agent web01 through NATS',
  ],
  shell: ['shellwire shell web01', 'shellwire shell --password bob@10.0.0.5'],
  tty: ['shellwire tty web01', 'shellwire tty web01 -- htop', 'shellwire tty -J alice@bastion:50008 web01', 'shellwire tty -J nats://10.0.0.1:4222 web01'],
  put: [
    'shellwire put app.tar.gz web01:/srv/releases/',
    'shellwire put -r --limit-rate 5M ./site web01:/var/www/',
    "shellwire put --parallel 20 --timeout 5m app.tar.gz '@web,!web07:/srv/releases/'   # to many hosts",
    'shellwire put --via bastion app.tar.gz web01:/srv/releases/',
  ],
  get: [
    'shellwire get web01:/var/log/syslog .',
    'shellwire get -r web01:/etc/nginx ./backup/',
    "shellwire get 'web[01-05]:/etc/nginx/nginx.conf' ./confs/   # ./confs/web01/nginx.conf, …",
  ],
  ls: ['shellwire ls web01:/var/log', 'shellwire ls --json web01:/srv', 'shellwire ls --via none web01:/srv   # directly, past the inventory\'s via:'],
  run: [
    'shellwire run @web -- uptime',
    "shellwire run --stream 'web[01-12]' '!web07' -- tail -n1 /var/log/syslog",
    'shellwire run --json --fail-fast role=db -- pg_isready',
    'shellwire run --via alice@bastion @web -- uptime   # the gateway\'s hosts, one connection to it',
    'shellwire run --via nats://10.0.0.1:4222 --tunnel @web -- uptime   # agents on NATS, a tunnel each',
  ],
  hosts: [
    'shellwire hosts',
    "shellwire hosts --fold '@web' '!web03'",
    'shellwire hosts --via alice@bastion   # what the gateway lets you reach',
    'shellwire hosts --via nats://10.0.0.1:4222 role=web   # the live agents on NATS',
  ],
  discover: ['shellwire discover --subnet 10.0.0.0/24', 'shellwire discover --subnet 10.0.0.0/24 --write-inventory --accept-new-host'],
  audit: ['shellwire audit --since 1h', 'shellwire audit --kind denied --json'],
  'audit verify': ['shellwire audit verify', 'shellwire audit verify --state-dir /var/lib/shellwire'],
  recordings: ['shellwire recordings --state-dir /var/lib/shellwire/gateway', 'shellwire recordings --user alice --json'],
  replay: ['shellwire replay 20261130T071500Z-3f9a1c2e', 'shellwire replay --speed 4 --idle-limit 2 20261130T071500Z-3f9a1c2e', 'shellwire replay --no-wait 20261130T071500Z-3f9a1c2e | less -R'],
  'web-login': ['shellwire web-login --via alice@bastion   # a one-time link to its web console; open it within a minute'],
  keygen: ['shellwire keygen', 'shellwire keygen -f ~/.shellwire/deploy_key -C deploy@ci'],
  user: ['shellwire user add alice --key alice.pub', 'shellwire user list'],
  'user add': ['shellwire user add alice --key ~/alice.pub', 'shellwire user add deploy --key deploy.pub --run-as deploy'],
  'user remove': ['shellwire user remove alice'],
  'user passwd': ['shellwire user passwd bob', 'echo "$PW" | shellwire user passwd bob   # from a script'],
  'user list': ['shellwire user list', 'shellwire user list --json'],
  key: ['shellwire key add alice ~/.ssh/id_ed25519.pub'],
  'key add': ['shellwire key add alice ~/.ssh/id_ed25519.pub'],
  token: ['shellwire token create --user ci --expires 30d', 'shellwire token revoke --user ci token-1'],
  'token create': ['shellwire token create --user ci --expires 30d > ci.token'],
  'token revoke': ['shellwire token revoke --user ci token-1'],
  locks: ['shellwire locks', 'shellwire locks clear 192.0.2.7'],
  'locks clear': ['shellwire locks clear 192.0.2.7', 'shellwire locks clear   # every lock'],
  'known-hosts': ['shellwire known-hosts scan @web > fingerprints.txt   # compare, then:', 'shellwire known-hosts add --from fingerprints.txt'],
  'known-hosts list': ['shellwire known-hosts list', 'shellwire known-hosts list web01 --json'],
  'known-hosts remove': ['shellwire known-hosts remove web01            # as ssh-keygen -R', 'shellwire known-hosts remove 10.0.0.5:50007', 'shellwire known-hosts remove nats:web01      # an agent\'s pin'],
  'known-hosts scan': ['shellwire known-hosts scan @web', 'shellwire known-hosts scan 10.0.0.5 10.0.0.6:50010', 'shellwire known-hosts scan --via nats://nats1:4222 web01 web02   # agents through NATS'],
  'known-hosts add': ['shellwire known-hosts add @web                 # pins each, printing its fingerprint', 'shellwire known-hosts add --from fingerprints.txt', 'shellwire known-hosts add --via nats://nats1:4222 web01   # pinned as nats:web01'],
  'install-service': ['sudo shellwire install-service && sudo systemctl enable --now shellwire', 'shellwire install-service --print   # show the unit'],
  'rotate-host-key': ['sudo shellwire rotate-host-key --state-dir /var/lib/shellwire'],
  completion: ['source <(shellwire completion bash)        # in ~/.bashrc', 'shellwire completion zsh > "${fpath[1]}/_shellwire"'],
  'completion bash': ['source <(shellwire completion bash)'],
  'completion zsh': ['shellwire completion zsh > "${fpath[1]}/_shellwire"   # then: compinit'],
};

/** The examples for the command at `path` (`['user', 'add']`); [] when it has none yet. */
export function helpExamples(path: readonly string[]): string[] {
  return EXAMPLES[path.join(' ')] ?? [];
}

/** Append an "Examples:" section to the `--help` of every command in the tree that has some. */
export function addExamples(command: Command, path: string[] = []): void {
  const examples = helpExamples(path);
  if (examples.length > 0) command.addHelpText('after', `\nExamples:\n${examples.map((line) => `  $ ${line}`).join('\n')}\n`);
  for (const sub of command.commands) addExamples(sub, [...path, sub.name()]);
}

/**
 * The zsh completion script, generated from the program's spec: one `_arguments` function
 * per command (options with their descriptions, positional arguments with what completes
 * them), and `_describe` for subcommands. Works autoloaded from $fpath (`#compdef`) and
 * sourced after compinit.
 */
import { VERSION } from './program.js';
import { allCommands, type ArgumentSpec, type CommandSpec, type OptionSpec, type ValueKind } from './completion-spec.js';

/** One zsh word, single-quoted. */
function quote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Text inside an `_arguments` `[description]`, or a `_describe` `name:description` entry. */
function bracketText(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/\\/g, '\\\\').replace(/([[\]])/g, '\\$1');
}

/** A message or argument name inside a `:message:action` spec, where ':' separates fields. */
function fieldText(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
}

/** `_shellwire` for the program, `_shellwire_cmd_user_add` for commands: apart from the helpers' names. */
function functionName(path: string[]): string {
  return (path.length === 0 ? '_shellwire' : ['_shellwire_cmd', ...path].join('_')).replace(/[^A-Za-z0-9_]/g, '_');
}

function action(kind: ValueKind, choices: string[] | undefined): string {
  if (choices) return `(${choices.map((choice) => choice.replace(/([\s()\\])/g, '\\$1')).join(' ')})`;
  switch (kind) {
    case 'host':
      return '_shellwire_hosts';
    case 'one-host':
      return '_shellwire_one_host';
    case 'remote-path':
      return '_shellwire_remote_paths';
    case 'remote-targets':
      return '_shellwire_remote_targets';
    case 'file':
      return '_files';
    case 'dir':
      return '_files -/';
    default:
      return ' ';
  }
}

function optionSpec(option: OptionSpec): string {
  const names = [option.short, option.long].filter((name): name is string => name !== undefined);
  // `-i+`: the value may follow attached or as the next word; `--identity=`: after '=' or as the next word.
  const forms = option.takesValue ? names.map((name) => (name.startsWith('--') ? `${name}=` : `${name}+`)) : names;
  const value = option.takesValue ? `:${fieldText(option.valueName ?? 'value')}:${action(option.valueKind, option.choices)}` : '';
  const body = quote(`[${bracketText(option.description)}]${value}`);
  if (forms.length === 1) return `${quote(forms[0]!)}${body}`;
  return `${quote(`(${names.join(' ')})`)}{${forms.join(',')}}${body}`;
}

function argumentSpecs(args: ArgumentSpec[]): string[] {
  // `N:` a required argument, `N::` an optional one, `*:` the rest (always optional to zsh).
  return args.map((arg, i) => quote(`${arg.variadic ? '*' : `${i + 1}${arg.required ? '' : ':'}`}:${fieldText(arg.name)}:${action(arg.kind, undefined)}`));
}

function commandFunction(command: CommandSpec): string {
  const name = functionName(command.path);
  const options = command.options.map(optionSpec);
  if (command.commands.length === 0) {
    return `${name}() {\n  _arguments -s -S \\\n    ${[...options, ...argumentSpecs(command.arguments)].join(' \\\n    ')}\n}\n`;
  }
  const entries = command.commands.map((sub) => quote(`${sub.name.replace(/:/g, '\\:')}:${sub.description.replace(/\s+/g, ' ')}`));
  const cases = command.commands.map((sub) => `        ${quote(sub.name)}) ${functionName(sub.path)} ;;`);
  const title = ['shellwire', ...command.path].join(' ');
  return `${name}() {
  local curcontext="$curcontext" state state_descr line
  typeset -A opt_args
  _arguments -C -s -S \\
    ${[...options, `'1: :->command'`, `'*:: :->argument'`].join(' \\\n    ')} && return
  case $state in
    command)
      local -a commands=(
        ${entries.join('\n        ')}
      )
      _describe -t commands ${quote(`${title} command`)} commands ;;
    argument)
      curcontext="\${curcontext%:*:*}:${command.path.length === 0 ? 'shellwire' : `shellwire-${command.path.join('-')}`}-$words[1]:"
      case $words[1] in
${cases.join('\n')}
      esac ;;
  esac
}
`;
}

export function zshCompletion(program: CommandSpec): string {
  return `#compdef shellwire
# zsh completion for shellwire ${VERSION}, generated from the program by \`shellwire completion zsh\`.
# Save it as _shellwire in a directory on $fpath (then compinit), or source it after compinit.

# Inventory host names and @groups (honouring --inventory FILE on the line).
_shellwire_host_words() {
  local inventory=\${opt_args[--inventory]}
  reply=(\${(f)"$(_call_program hosts shellwire completion hosts \${inventory:+--inventory "$inventory"} 2>/dev/null)"})
}

_shellwire_hosts() {
  local -a reply
  _shellwire_host_words
  _wanted hosts expl 'inventory host or @group' compadd -a reply
}

# One host (exec, shell, tty): inventory names, no @groups.
_shellwire_one_host() {
  local -a reply sw_hosts
  _shellwire_host_words
  sw_hosts=(\${reply:#@*})
  _wanted hosts expl 'inventory host' compadd -a sw_hosts
}

# HOST:PATH or a local file: hosts (without @groups) get a ':' suffix.
_shellwire_remote_paths() {
  if compset -P '*:'; then
    _message 'remote path'
    return
  fi
  local -a reply sw_hosts
  _shellwire_host_words
  sw_hosts=(\${reply:#@*})
  _alternative 'hosts:inventory host:compadd -S : -a sw_hosts' 'files:local file:_files'
}

# TARGETS:PATH, HOST:PATH or a local file (put, get): hosts and @groups get a ':' suffix.
_shellwire_remote_targets() {
  if compset -P '*:'; then
    _message 'remote path'
    return
  fi
  local -a reply
  _shellwire_host_words
  _alternative 'hosts:inventory host or @group:compadd -S : -a reply' 'files:local file:_files'
}

${allCommands(program).map(commandFunction).join('\n')}
if [[ $funcstack[1] == _shellwire ]]; then
  _shellwire "$@"
else
  compdef _shellwire shellwire
fi
`;
}

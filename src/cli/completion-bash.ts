/**
 * The bash completion script, generated from the program's spec: tables of subcommands,
 * options and argument kinds per command path, and one function that walks the words typed
 * so far. It reads COMP_LINE (not COMP_WORDS), because bash splits words at ':' and '='
 * (COMP_WORDBREAKS), which would cut `web01:/tmp` and `--state-dir=/x` apart.
 */
import { VERSION } from './program.js';
import { allCommands, type ArgumentSpec, type CommandSpec, type OptionSpec } from './completion-spec.js';

/** One bash word, single-quoted. */
function quote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function optionNames(option: OptionSpec): string[] {
  return [option.short, option.long].filter((name): name is string => name !== undefined);
}

function valueKind(option: OptionSpec): string {
  return option.choices ? `choice:${option.choices.join(' ')}` : option.valueKind;
}

function argumentKinds(args: ArgumentSpec[]): string {
  return args.map((arg) => (arg.variadic ? `${arg.kind}...` : arg.kind)).join(' ');
}

function table(name: string, entries: [string, string][]): string {
  return `declare -gA ${name}=(\n${entries.map(([key, value]) => `  [${quote(key)}]=${quote(value)}\n`).join('')})\n`;
}

export function bashCompletion(program: CommandSpec): string {
  const commands = allCommands(program);
  // Keyed by the words from the program name on: bash refuses an empty key.
  const key = (command: CommandSpec): string => ['shellwire', ...command.path].join(' ');
  const kinds: [string, string][] = commands.flatMap((command) =>
    command.options.filter((option) => option.takesValue).flatMap((option) => optionNames(option).map((name): [string, string] => [`${key(command)} ${name}`, valueKind(option)])),
  );
  return `# bash completion for shellwire ${VERSION}, generated from the program by \`shellwire completion bash\`.
# Load it with:  source <(shellwire completion bash)   (e.g. in ~/.bashrc)
${table('_shellwire_subcommands', commands.map((c) => [key(c), c.commands.map((sub) => sub.name).join(' ')]))}${table('_shellwire_options', commands.map((c) => [key(c), c.options.flatMap(optionNames).join(' ')]))}${table('_shellwire_value_options', commands.map((c) => [key(c), c.options.filter((o) => o.takesValue).flatMap(optionNames).join(' ')]))}${table('_shellwire_value_kind', kinds)}${table('_shellwire_arguments', commands.map((c) => [key(c), argumentKinds(c.arguments)]))}
# Inventory host names and @groups (honouring --inventory FILE on the line).
_shellwire_hosts() {
  command shellwire completion hosts \${1:+--inventory "$1"} 2>/dev/null
}

# Candidates for one value of KIND starting with $2, into COMPREPLY.
_shellwire_values() {
  local kind=$1 cur=$2 inventory=$3
  case $kind in
    one-host*) COMPREPLY=($(compgen -W "$(_shellwire_hosts "$inventory" | grep -v '^@')" -- "$cur")) ;;
    host*) COMPREPLY=($(compgen -W "$(_shellwire_hosts "$inventory")" -- "$cur")) ;;
    remote-targets*)
      if [[ $cur == *:* ]]; then return; fi
      COMPREPLY=($(compgen -W "$(_shellwire_hosts "$inventory" | sed 's/$/:/')" -- "$cur") $(compgen -f -- "$cur"))
      compopt -o nospace -o filenames 2>/dev/null ;;
    remote-path*)
      if [[ $cur == *:* ]]; then return; fi
      COMPREPLY=($(compgen -W "$(_shellwire_hosts "$inventory" | sed 's/$/:/' | grep -v '^@')" -- "$cur") $(compgen -f -- "$cur"))
      compopt -o nospace -o filenames 2>/dev/null ;;
    file*) COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null ;;
    dir*) COMPREPLY=($(compgen -d -- "$cur")); compopt -o filenames 2>/dev/null ;;
    choice:*) COMPREPLY=($(compgen -W "\${kind#choice:}" -- "$cur")) ;;
  esac
}

_shellwire() {
  local line=\${COMP_LINE:0:COMP_POINT}
  local -a words
  read -ra words <<< "$line"
  [[ -z $line || $line == *[[:space:]] ]] && words+=("")
  local cur=\${words[\${#words[@]}-1]} path=shellwire word i=1 nargs=0 dashdash=0 inventory="" value_of=""
  COMPREPLY=()
  while (( i < \${#words[@]} - 1 )); do
    word=\${words[i]}
    if (( dashdash )); then
      nargs=$((nargs + 1))
    elif [[ $word == -- ]]; then
      dashdash=1
    elif [[ $word == --*=* ]]; then
      [[ \${word%%=*} == --inventory ]] && inventory=\${word#*=}
    elif [[ $word == -* ]]; then
      if [[ " \${_shellwire_value_options[$path]} " == *" $word "* ]]; then
        if (( i + 1 == \${#words[@]} - 1 )); then value_of=$word; fi
        [[ $word == --inventory ]] && inventory=\${words[i+1]}
        i=$((i + 1))
      fi
    elif (( nargs == 0 )) && [[ " \${_shellwire_subcommands[$path]} " == *" $word "* ]]; then
      path="$path $word"
    else
      nargs=$((nargs + 1))
    fi
    i=$((i + 1))
  done

  if [[ -n $value_of ]]; then
    _shellwire_values "\${_shellwire_value_kind[$path $value_of]}" "$cur" "$inventory"
  elif (( ! dashdash )) && [[ $cur == --*=* ]]; then
    local option=\${cur%%=*}
    _shellwire_values "\${_shellwire_value_kind[$path $option]}" "\${cur#*=}" "$inventory"
    COMPREPLY=("\${COMPREPLY[@]/#/$option=}")
  elif (( ! dashdash )) && [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "\${_shellwire_options[$path]}" -- "$cur"))
  elif (( nargs == 0 && ! dashdash )) && [[ -n \${_shellwire_subcommands[$path]} ]]; then
    COMPREPLY=($(compgen -W "\${_shellwire_subcommands[$path]}" -- "$cur"))
  elif (( ! dashdash )); then
    local -a kinds=(\${_shellwire_arguments[$path]})
    local kind=\${kinds[nargs]:-} last=""
    (( \${#kinds[@]} )) && last=\${kinds[\${#kinds[@]}-1]}
    if [[ -z $kind && $last == *... ]]; then kind=$last; fi
    [[ -n $kind ]] && _shellwire_values "$kind" "$cur" "$inventory"
  fi

  # bash replaces only its own last word, which starts after the last ':' or '=': drop what precedes it.
  local bashcur=\${COMP_WORDS[COMP_CWORD]}
  [[ $bashcur == [:=] ]] && bashcur=""
  local prefix=\${cur%"$bashcur"}
  if [[ -n $prefix ]]; then
    local -a trimmed=()
    local reply
    for reply in "\${COMPREPLY[@]}"; do trimmed+=("\${reply#"$prefix"}"); done
    COMPREPLY=("\${trimmed[@]}")
  fi
  return 0
}
complete -F _shellwire shellwire
`;
}

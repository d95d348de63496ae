/**
 * The commander program as plain data: commands, arguments, options, help text and examples.
 * The shell completion scripts and the man page (scripts/man.mjs, via `shellwire completion
 * spec`) are generated from it, so a command or option added anywhere appears in all three
 * without being listed again.
 */
import type { Argument, Command, Option } from 'commander';
import { helpExamples } from './help-examples.js';

/** What a value (an argument or an option's value) is, for completion. */
/** 'one-host': exec/shell/tty's `<host>`, which takes no @group or target expression. */
/** 'remote-targets': put/get's `<paths...>`, where HOST:PATH may also be TARGETS:PATH (@groups offered). */
export type ValueKind = 'host' | 'one-host' | 'remote-path' | 'remote-targets' | 'file' | 'dir' | 'none';

export interface OptionSpec {
  /** As written: `-i, --identity <keyfile>`. */
  flags: string;
  short?: string;
  long?: string;
  /** Takes a value (`<x>` required, `[x]` optional). */
  takesValue: boolean;
  valueName?: string;
  valueKind: ValueKind;
  choices?: string[];
  /** The description with its default, as `--help` prints it. */
  description: string;
}

export interface ArgumentSpec {
  name: string;
  required: boolean;
  variadic: boolean;
  kind: ValueKind;
  description: string;
}

export interface CommandSpec {
  name: string;
  /** Words from the program name down: ['user', 'add']; [] for the program itself. */
  path: string[];
  aliases: string[];
  description: string;
  /** `shellwire user add [options] <name>`. */
  synopsis: string;
  arguments: ArgumentSpec[];
  options: OptionSpec[];
  commands: CommandSpec[];
  examples: string[];
}

/** Host-like positional names: a target expression, a host, or `run`'s targets-then-command words. */
const HOST_ARGUMENTS = /^(host|hosts|target|targets|destination|words)$/i;

export function commandSpec(command: Command, path: string[] = []): CommandSpec {
  const help = command.createHelp();
  return {
    name: command.name(),
    path,
    aliases: command.aliases(),
    description: help.commandDescription(command),
    synopsis: help.commandUsage(command),
    arguments: help.visibleArguments(command).map((argument) => argumentSpec(argument, help.argumentDescription(argument))),
    options: help.visibleOptions(command).map((option) => optionSpec(option, help.optionDescription(option))),
    commands: help.visibleCommands(command).map((sub) => commandSpec(sub, [...path, sub.name()])),
    examples: helpExamples(path),
  };
}

/** Every command in the tree, depth first, the program itself first. */
export function allCommands(spec: CommandSpec): CommandSpec[] {
  return [spec, ...spec.commands.flatMap(allCommands)];
}

function argumentSpec(argument: Argument, description: string): ArgumentSpec {
  const name = argument.name();
  const kind: ValueKind = name === 'host' && !argument.variadic ? 'one-host' : HOST_ARGUMENTS.test(name) ? 'host' : /path/i.test(name) ? (argument.variadic ? 'remote-targets' : 'remote-path') : /file$/i.test(name) ? 'file' : /dir$/i.test(name) ? 'dir' : 'none';
  return { name, required: argument.required, variadic: argument.variadic, kind, description };
}

function optionSpec(option: Option, description: string): OptionSpec {
  const takesValue = option.required || option.optional;
  const valueName = /[<[]([^>\]]+)[>\]]/.exec(option.flags)?.[1];
  const spec: OptionSpec = { flags: option.flags, takesValue, valueKind: takesValue ? valueKind(valueName ?? '') : 'none', description };
  if (option.short) spec.short = option.short;
  if (option.long) spec.long = option.long;
  if (valueName) spec.valueName = valueName;
  if (option.argChoices) spec.choices = [...option.argChoices];
  return spec;
}

function valueKind(valueName: string): ValueKind {
  if (/dir/i.test(valueName)) return 'dir';
  if (/file|path/i.test(valueName)) return 'file';
  if (/^(host|target)s?$/i.test(valueName)) return 'host';
  // --via/-J: a gateway is a host of its own (an inventory name or known host), as ssh completes -J.
  if (/gateway/i.test(valueName)) return 'one-host';
  return 'none';
}

/**
 * The one launcher: a `CommandSpec` (command-spec.ts) becomes a running command, on pipes
 * (`CommandProcess`) or on a terminal (`PtyProcess`), contained when the daemon has containers
 * (containment.ts). A command that cannot start is a refusal (code and message for OPEN_FAIL),
 * not a throw, so that a spawner in another process (issue 12) can send it back as data.
 */
import { ErrorCode } from '../errors.js';
import { CommandProcess, type CommandExit } from './command-process.js';
import { PtyProcess, loadedNodePty, nodePtyUnavailable } from './pty-process.js';
import { spawnLine, type CommandSpec } from './command-spec.js';
import type { Containers } from './containment.js';

/** A running command: on pipes, or on a terminal when the spec asked for one. */
export type LaunchedProcess = CommandProcess | PtyProcess;

export type LaunchResult =
  | { ok: true; process: LaunchedProcess }
  | { ok: false; code: typeof ErrorCode.BAD_REQUEST | typeof ErrorCode.SPAWN_FAILED; message: string };

export interface LaunchOptions {
  /** Where the command is contained; without it, its process group only. */
  containers?: Containers | undefined;
  /** The command ended and its output is read (`CommandProcess`/`PtyProcess` onClose). */
  onClose: (exit: CommandExit) => void;
}

export function launchCommand(spec: CommandSpec, options: LaunchOptions): LaunchResult {
  const line = spawnLine(spec);
  const common = { ...line, killGraceMs: spec.killGraceMs };
  if (spec.pty) {
    const ptyModule = loadedNodePty();
    if (!ptyModule) {
      return { ok: false, code: ErrorCode.BAD_REQUEST, message: `Terminals are not available on this daemon (${nodePtyUnavailable() ?? 'node-pty did not load'}). Run the command without a terminal.` };
    }
    try {
      return { ok: true, process: new PtyProcess(ptyModule, { ...common, ...spec.pty, ...contained(options.containers) }, options.onClose) };
    } catch (err) {
      return { ok: false, code: ErrorCode.SPAWN_FAILED, message: `Cannot start ${line.file} on a terminal: ${(err as Error).message}` };
    }
  }
  try {
    const proc = new CommandProcess({ ...common, statePipe: spec.statePipe === true, outputGraceMs: spec.outputGraceMs, ...contained(options.containers) }, options.onClose);
    return { ok: true, process: proc };
  } catch (err) {
    return { ok: false, code: ErrorCode.SPAWN_FAILED, message: `Cannot start the command: ${(err as Error).message}` };
  }
}

/** A container for the command about to start (none when the daemon has no containers). */
function contained(containers: Containers | undefined) {
  const containment = containers?.open();
  return containment ? { containment } : {};
}

/**
 * The one launcher: a `CommandSpec` (command-spec.ts) becomes a running command, on pipes
 * (`CommandProcess`) or on a terminal (`PtyProcess`), contained when the daemon has containers
 * (containment.ts). A command that cannot start is a refusal (code and message for OPEN_FAIL),
 * not a throw, so that a spawner in another process can send it back as data.
 *
 * `startCommand` is the daemon's way in: commands on pipes are forked by the spawner helper
 * (spawner.ts) when the daemon has one, so that a spawn costs the same however much the
 * daemon holds. Terminals stay with `launchCommand` in the daemon: node-pty opens the pty
 * master here, and a master opened in the helper could not be handed back without a native
 * addon for fd passing (SCM_RIGHTS), which Node's IPC does not do for arbitrary fds.
 */
import { ErrorCode } from '../errors.js';
import { CommandProcess, type CommandExit, type ProcessOptions } from './command-process.js';
import { PtyProcess, loadedNodePty, nodePtyUnavailable } from './pty-process.js';
import { spawnLine, type CommandSpec } from './command-spec.js';
import type { Containers } from './containment.js';
import type { Spawner } from './spawner.js';

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

export interface StartOptions extends LaunchOptions {
  /** The daemon's spawner; without it (`serve --spawner off`), commands are forked by the daemon itself. */
  spawner?: Spawner | null | undefined;
}

/**
 * True when `startCommand` forks `spec` in this process, synchronously (`launchCommand`):
 * terminals, and a daemon without a spawner. Callers that must answer before the next frame
 * is read take that path themselves.
 */
export function startsHere(spec: CommandSpec, spawner: Spawner | null | undefined): boolean {
  return spec.pty !== undefined || !spawner;
}

/**
 * Start a command, through the spawner when there is one (pipes only). Resolves once it runs
 * (or once it is known that it could not start: a refusal, or a process that closes with its
 * spawnError); never rejects.
 */
export async function startCommand(spec: CommandSpec, options: StartOptions): Promise<LaunchResult> {
  const spawner = startsHere(spec, options.spawner) ? null : options.spawner;
  if (!spawner) return launchCommand(spec, options);
  try {
    const proc = await CommandProcess.start(pipeOptions(spec, options.containers), options.onClose, spawner);
    return { ok: true, process: proc };
  } catch (err) {
    // The request was fine; starting it failed (the spawner's pipe broke, the OS refused):
    // SW_ERR_SPAWN_FAILED, as when the daemon forks it itself — not the client's BAD_REQUEST.
    return { ok: false, code: ErrorCode.SPAWN_FAILED, message: `Cannot start the command: ${(err as Error).message}` };
  }
}

export function launchCommand(spec: CommandSpec, options: LaunchOptions): LaunchResult {
  if (spec.pty) {
    const line = spawnLine(spec);
    const ptyModule = loadedNodePty();
    if (!ptyModule) {
      return { ok: false, code: ErrorCode.BAD_REQUEST, message: `Terminals are not available on this daemon (${nodePtyUnavailable() ?? 'node-pty did not load'}). Run the command without a terminal.` };
    }
    try {
      return { ok: true, process: new PtyProcess(ptyModule, { ...line, killGraceMs: spec.killGraceMs, ...spec.pty, ...contained(options.containers) }, options.onClose) };
    } catch (err) {
      return { ok: false, code: ErrorCode.SPAWN_FAILED, message: `Cannot start ${line.file} on a terminal: ${(err as Error).message}` };
    }
  }
  try {
    const proc = new CommandProcess(pipeOptions(spec, options.containers), options.onClose);
    return { ok: true, process: proc };
  } catch (err) {
    return { ok: false, code: ErrorCode.SPAWN_FAILED, message: `Cannot start the command: ${(err as Error).message}` };
  }
}

/** What a command on pipes is started with, in a container of its own when there are containers. */
function pipeOptions(spec: CommandSpec, containers: Containers | undefined): ProcessOptions {
  return { ...spawnLine(spec), killGraceMs: spec.killGraceMs, statePipe: spec.statePipe === true, outputGraceMs: spec.outputGraceMs, ...contained(containers) };
}

/** A container for the command about to start (none when the daemon has no containers). */
function contained(containers: Containers | undefined) {
  const containment = containers?.open();
  return containment ? { containment } : {};
}

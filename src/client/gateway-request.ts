/**
 * A request to the gateway itself (docs/gateway.md): a channel of kind `gateway` whose OPEN
 * carries `{ op, ... }`; the gateway answers OPEN_OK, sends one document as STDOUT data
 * (`hosts`: the JSON list of hosts the operator may reach; `recordings`: the list of
 * recordings; `recording`: one asciicast file), then EXIT 0. `shellwire hosts --via`,
 * `recordings --via` and `replay --via` use it.
 */
import type { OtherOpen } from '../protocol/messages.js';
import { decodeExit } from '../protocol/messages.js';
import { CommandError, ErrorCode, ProtocolError, RequestError, type CommandResult, type ShellwireError } from '../errors.js';
import { ClientChannel } from './client-channel.js';
import type { ChannelOpener } from './channel-host.js';

/** Credit granted for the answer; re-granted as it is taken. */
const GATEWAY_WINDOW = 1024 * 1024;
const GATEWAY_MAX_PACKET = 64 * 1024;
/** The most a buffered answer may hold (a list of hosts or recordings); stream larger ones with `onData`. */
export const MAX_GATEWAY_ANSWER_BYTES = 64 * 1024 * 1024;

export interface GatewayRequestOptions {
  /** Cancel the request (its channel is closed). */
  signal?: AbortSignal;
  /** Take the answer chunk by chunk (a recording) instead of buffering it; the promise then resolves with an empty Buffer. */
  onData?: (chunk: Buffer) => void;
}

/**
 * Send `{ op, ...params }` on a `gateway` channel and resolve with the STDOUT it answers.
 *
 * @throws {RequestError} (rejects) the gateway refused (`SW_ERR_DENIED`; a daemon, which has
 *   no `gateway` kind: `SW_ERR_BAD_REQUEST`).
 * @throws {CommandError} (rejects) it answered with a non-zero exit (`SW_ERR_COMMAND_FAILED`),
 *   more than MAX_GATEWAY_ANSWER_BYTES (`SW_ERR_MAX_BUFFER`), or `signal` canceled
 *   (`SW_ERR_COMMAND_CANCELED`).
 * @throws {ConnectionError} (rejects) the connection is closed or was lost.
 */
/** A gateway request that did not answer, shaped as a failed command (`gateway OP` on the gateway). */
function requestFailed(code: ErrorCode, message: string, op: string, host: string, outcome: Partial<CommandResult>): CommandError {
  const result: CommandResult = {
    command: `gateway ${op}`, host, exitCode: null, signal: null, stdout: '', stderr: '', stdoutBytes: Buffer.alloc(0), stderrBytes: Buffer.alloc(0),
    durationMs: 0, timedOut: false, canceled: false, ...outcome,
  };
  return new CommandError(code, message, result);
}

export function gatewayRequest(owner: ChannelOpener, params: { op: string } & Record<string, unknown>, options: GatewayRequestOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const host = owner.hostLabel;
    const chunks: Buffer[] = [];
    let size = 0;
    let exit: ReturnType<typeof decodeExit> | null = null;
    let failure: ShellwireError | null = null;
    const message: OtherOpen = { kind: 'gateway', window: GATEWAY_WINDOW, maxPacket: GATEWAY_MAX_PACKET, params };
    // A hoisted function, not a const: a transport that answers at once may end the channel
    // inside its constructor, and `ended` names `abort` (a const there would not exist yet).
    function abort(): void {
      link.close();
    }
    const link: ClientChannel = new ClientChannel(owner, message, {
      hooks: {
        onData: (stream, chunk) => {
          if (stream !== 'stdout') throw new ProtocolError(ErrorCode.BAD_MESSAGE, `Unexpected ${stream.toUpperCase()} on gateway channel ${link.id}.`, { channel: link.id });
          if (options.onData) options.onData(chunk);
          else {
            size += chunk.length;
            if (size > MAX_GATEWAY_ANSWER_BYTES) {
              failure ??= requestFailed(ErrorCode.MAX_BUFFER, `${host} answered "${params.op}" with more than ${MAX_GATEWAY_ANSWER_BYTES} bytes; stopped.`, params.op, host, {});
              link.close();
              return;
            }
            chunks.push(chunk);
          }
          link.channel.consumed(chunk.length);
        },
        onExit: (payload) => {
          exit = decodeExit(payload);
        },
      },
      refused: (fail) => new RequestError(fail.code, `${host} refused "${params.op}": ${fail.message}`, { host }),
      ended: (error) => {
        options.signal?.removeEventListener('abort', abort);
        if (error) return reject(error);
        if (failure) return reject(failure);
        if (exit === null) return reject(requestFailed(ErrorCode.COMMAND_CANCELED, `The "${params.op}" request to ${host} was canceled.`, params.op, host, { canceled: true }));
        if (exit.exitCode !== 0) {
          const why = exit.error ? `: ${exit.error.message}` : exit.signal ? ` (${exit.signal})` : ` (exit ${exit.exitCode})`;
          return reject(requestFailed(ErrorCode.COMMAND_FAILED, `${host} could not answer "${params.op}"${why}`, params.op, host, { exitCode: exit.exitCode, signal: exit.signal }));
        }
        resolve(Buffer.concat(chunks));
      },
    });
    if (options.signal?.aborted) abort();
    else options.signal?.addEventListener('abort', abort, { once: true });
  });
}

/**
 * Server side of a session channel: it runs nothing itself, it holds the cwd and
 * environment that exec channels opened with `session: <id>` run in and update.
 *
 *   client: OPEN{kind:"session"} → … → CLOSE      server: OPEN_OK{cwd} → … → CLOSE
 */
import { statSync } from 'node:fs';
import { FrameType, type Frame } from '../protocol/frame.js';
import type { OpenRequest } from '../protocol/messages.js';
import { ErrorCode, ProtocolError } from '../errors.js';
import { SessionState } from './session-state.js';
import { encodeOsBytes } from '../protocol/os-bytes.js';
import type { ChannelHost, ServerChannel } from './channel-host.js';

export class SessionChannel implements ServerChannel {
  readonly id: number;
  readonly state: SessionState;
  #host: ChannelHost;
  #closed = false;

  constructor(id: number, host: ChannelHost, request: OpenRequest) {
    this.id = id;
    this.#host = host;
    this.state = new SessionState(request.cwd ?? host.user.home, { ...host.baseEnv, ...request.env });
  }

  get busy(): boolean {
    return false;
  }

  start(): { code: string; message: string } | null {
    try {
      if (!statSync(encodeOsBytes(this.state.cwd)).isDirectory()) throw new Error('not a directory');
    } catch (err) {
      return { code: ErrorCode.BAD_REQUEST, message: `Session directory ${this.state.cwd} is not usable: ${(err as Error).message}.` };
    }
    this.#host.conn.sendJson(FrameType.OPEN_OK, this.id, { window: 0, maxPacket: this.#host.limits.maxPayload, cwd: this.state.cwd });
    return null;
  }

  onFrame(frame: Frame): void {
    if (this.#closed) return;
    throw new ProtocolError(ErrorCode.BAD_MESSAGE, `Frame type ${frame.type} is not valid on a session channel.`, { channel: this.id });
  }

  onClientClose(): void {
    if (!this.#closed) this.#host.conn.send(FrameType.CLOSE, this.id);
    this.#closed = true;
    this.#host.release(this.id);
  }

  onConnectionLost(): void {
    this.#closed = true;
  }

  kill(): void {}
}

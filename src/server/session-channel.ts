/**
 * Server side of a session channel: it runs nothing itself, it holds the cwd and
 * environment that exec channels opened with `session: <id>` run in and update.
 *
 *   client: OPEN{kind:"session"} → … → CLOSE      server: OPEN_OK{cwd} → … → CLOSE
 *
 * It takes no frame but CLOSE (no hooks: anything else is SW_ERR_BAD_MESSAGE, channel-state.ts).
 */
import { statSync } from 'node:fs';
import type { SessionOpen } from '../protocol/messages.js';
import { ErrorCode } from '../errors.js';
import type { Channel, ChannelHooks } from '../channel/channel-state.js';
import { SessionState } from './session-state.js';
import { encodeOsBytes } from '../protocol/os-bytes.js';
import type { ChannelHost, Refusal, ServerChannel } from './channel-host.js';

export class SessionChannel implements ServerChannel {
  readonly session: SessionState;
  readonly hooks: ChannelHooks = { onClose: () => {} };
  readonly busy = false;
  #host: ChannelHost;

  constructor(_id: number, host: ChannelHost, request: SessionOpen) {
    this.#host = host;
    this.session = new SessionState(request.params.cwd ?? host.user.home, { ...host.baseEnv, ...request.params.env });
  }

  start(channel: Channel): Refusal | null {
    try {
      if (!statSync(encodeOsBytes(this.session.cwd)).isDirectory()) throw new Error('not a directory');
    } catch (err) {
      return { code: ErrorCode.BAD_REQUEST, message: `Session directory ${this.session.cwd} is not usable: ${(err as Error).message}.` };
    }
    channel.openOk({ window: 0, maxPacket: this.#host.limits.maxPayload, cwd: this.session.cwd });
    return null;
  }

  kill(): void {}
}

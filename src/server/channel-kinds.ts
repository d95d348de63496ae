/**
 * The one registry of channel kinds the daemon serves: exec, session and file, plus what an
 * embedder adds (`ServerOptions.channelKinds`, which may also replace one).
 */
import { factoryOf, type ChannelFactory } from './channel-host.js';
import { ExecChannel } from './exec-channel.js';
import { SessionChannel } from './session-channel.js';
import { fileChannelFactory } from './file-channel.js';
import type { ForbiddenDir } from './files/forbidden.js';

export interface ChannelKindOptions {
  /** Directories file channels never open for anyone but the daemon's token (files/forbidden.ts). */
  forbidden?: readonly ForbiddenDir[];
  /** Extra kinds, or replacements, by name. */
  extra?: Iterable<[string, ChannelFactory]>;
}

export function channelKinds(options: ChannelKindOptions = {}): ReadonlyMap<string, ChannelFactory> {
  return new Map<string, ChannelFactory>([
    ['exec', factoryOf('exec', (id, host, request) => new ExecChannel(id, host, request))],
    ['session', factoryOf('session', (id, host, request) => new SessionChannel(id, host, request))],
    ['file', fileChannelFactory(options.forbidden ? { forbidden: options.forbidden } : {})],
    ...(options.extra ?? []),
  ]);
}

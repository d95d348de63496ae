/**
 * The classic port (`shellwire serve --classic-port`): the socket tutorial's plaintext
 * protocol — send a command, get its output or `Done.` — so that `nc`, old scripts and the
 * tutorial's own client keep working. The protocol and teardown live in classic-connection.ts,
 * framing in classic-framer.ts; this file listens, limits clients and stops.
 *
 * Plaintext means the token and all output cross the network in the clear, hence off by
 * default and on loopback unless the operator names another address.
 */
import { commandBaseEnv } from './command-env.js';
import { createServer, type Server as NetServer, type Socket, type AddressInfo } from 'node:net';
import { homedir } from 'node:os';
import { once } from 'node:events';
import type { Logger } from 'pino';
import { ErrorCode } from '../errors.js';
import { silentLogger } from '../silent-logger.js';
import { isLoopback } from '../transport/address.js';
import { DEFAULT_CLASSIC_LIMITS, type ClassicLimits } from './classic-limits.js';
import { ClassicConnection, classicErrorLine } from './classic-connection.js';
import { Containers } from '../process/containment.js';
import { ContainedSink, type AuditSink } from '../audit/audit-sink.js';
import type { Spawner } from '../process/spawner.js';

export { DEFAULT_CLASSIC_LIMITS, type ClassicLimits } from './classic-limits.js';

export const DEFAULT_CLASSIC_HOST = '127.0.0.1';

export interface ClassicServerOptions {
  /** The token the first line must carry: the daemon's (`Server.token`). */
  token: string;
  /** 0 picks a free port. */
  port: number;
  /** Default 127.0.0.1: the protocol is plaintext. */
  host?: string;
  logger?: Logger;
  limits?: Partial<ClassicLimits>;
  /** Working directory of commands; default the daemon user's home. */
  cwd?: string;
  /** Environment of commands; default the daemon's, minus its secrets, plus login basics. */
  env?: Record<string, string>;
  /** The daemon's command containers (`Server.containers`); default: its own. */
  containers?: Containers;
  /** The daemon's spawner (`Server.spawner`); without it, this process forks the commands. */
  spawner?: Spawner;
  /** The daemon's audit trail (`Server.audit`): classic clients and commands are recorded too. */
  audit?: AuditSink | null;
}

/**
 * Listener for classic clients. `listen()`, then `close()` on shutdown; each client's
 * commands run one at a time in their own process group and die with the client.
 */
export class ClassicServer {
  readonly limits: ClassicLimits;
  #log: Logger;
  #net: NetServer;
  #connections = new Set<ClassicConnection>();
  #host: string;
  #port: number;
  #token: string;
  #cwd: string;
  #env: Record<string, string>;
  #draining = false;
  #containers: Containers;
  #spawner: Spawner | undefined;
  #audit: AuditSink | null;

  constructor(options: ClassicServerOptions) {
    if (options.token.length === 0) throw new TypeError('ClassicServer needs the daemon token.');
    this.limits = { ...DEFAULT_CLASSIC_LIMITS, ...options.limits };
    this.#log = (options.logger ?? silentLogger()).child({ listener: 'classic' });
    this.#host = options.host ?? DEFAULT_CLASSIC_HOST;
    this.#port = options.port;
    this.#token = options.token;
    this.#cwd = options.cwd ?? homedir();
    this.#env = options.env ?? commandBaseEnv();
    // The daemon's (already contained) trail, or a sink given here: a throw never ends the process.
    this.#audit = options.audit ? ContainedSink.of(options.audit, this.#log) : null;
    this.#containers = options.containers?.share() ?? new Containers({ onWarning: (message) => this.#log.warn(message) });
    this.#spawner = options.spawner;
    // allowHalfOpen: a client's EOF means "no more commands", not "no more replies".
    this.#net = createServer({ allowHalfOpen: true }, (socket) => this.#netOnConnection(socket));
  }

  async listen(): Promise<AddressInfo> {
    this.#net.listen({ host: this.#host, port: this.#port });
    await once(this.#net, 'listening'); // rejects on 'error' (EADDRINUSE, EACCES)
    const address = this.address;
    const fields = { address: address.address, port: address.port, maxClients: this.limits.maxClients };
    if (isLoopback(this.#host)) this.#log.info(fields, 'classic plaintext port listening');
    else this.#log.warn(fields, 'classic plaintext port listening beyond loopback: the token and all output travel unencrypted');
    return address;
  }

  get address(): AddressInfo {
    return this.#net.address() as AddressInfo;
  }

  get clientCount(): number {
    return this.#connections.size;
  }

  /**
   * Stop: no new clients; idle ones are told and closed now, running commands get
   * `graceMs` to finish and be answered, then their process groups are killed.
   */
  async close(graceMs: number = 10_000): Promise<void> {
    if (!this.#draining) {
      this.#draining = true;
      this.#net.close();
      this.#log.info({ clients: this.#connections.size, graceMs }, 'classic port shutting down');
      for (const connection of this.#connections) connection.shutdown();
    }
    const deadline = Date.now() + graceMs;
    let killed = false;
    while (this.#connections.size > 0) {
      if (!killed && Date.now() >= deadline) {
        killed = true;
        for (const connection of this.#connections) connection.kill();
      }
      if (Date.now() >= deadline + this.limits.closeLingerMs + 1_000) {
        for (const connection of this.#connections) connection.destroy();
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.#containers.close();
  }

  #netOnConnection(socket: Socket): void {
    const client = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.#draining || this.#connections.size >= this.limits.maxClients) {
      const [code, message] = this.#draining
        ? [ErrorCode.SERVER_SHUTTING_DOWN, 'The daemon is shutting down.']
        : [ErrorCode.TOO_MANY_CONNECTIONS, `The classic port already serves ${this.limits.maxClients} clients; try again later.`];
      if (!this.#draining) this.#log.warn({ client, limit: this.limits.maxClients }, 'classic client refused: limit reached');
      socket.on('error', () => {});
      socket.end(classicErrorLine(code, message));
      setTimeout(() => socket.destroy(), this.limits.closeLingerMs).unref();
      return;
    }
    this.#log.debug({ client }, 'classic client connected');
    const connection = new ClassicConnection(socket, {
      token: this.#token,
      limits: this.limits,
      log: this.#log,
      cwd: this.#cwd,
      env: this.#env,
      containers: this.#containers,
      spawner: this.#spawner,
      audit: this.#audit,
      onClosed: (c) => this.#connections.delete(c),
    });
    this.#connections.add(connection);
  }
}

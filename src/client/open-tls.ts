/**
 * TCP then TLS 1.3 to a daemon, with failures told the way an operator can act on them:
 * nothing listening, a host that never answers, a port that answers with SSH or HTTP, a TLS
 * service that is not shellwire, a port that hangs up at once, a port that says nothing.
 * OpenSSL's own words ("ssl3_get_record:wrong version number") only ever travel as `cause`.
 */
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { ConnectionError, ErrorCode, HostVerificationError, type ShellwireError } from '../errors.js';
import { TLS_CIPHERS, TLS_MIN_VERSION, ALPN_PROTOCOL, fingerprintOfCertificate } from '../transport/tls.js';
import { DEFAULT_PORT, formatTarget, type Target } from './target.js';
import { DEFAULT_GATEWAY_PORT } from './via.js';
import type { Transport } from '../transport/transport.js';

/** How long a failed handshake's second look at the port may take (see `identifyService`). */
export const IDENTIFY_SERVICE_MS = 1_500;

const DEFAULT_PORT_NOTE = `the shellwire daemon listens on ${DEFAULT_PORT} by default`;

/** What is being dialled, for the advice a failure gives: a daemon, or a gateway (`--via`). */
export interface DialedService {
  /** The command that serves it. */
  program: string;
  /** Its default port, said when nothing answers. */
  note: string;
}

export const DAEMON_SERVICE: DialedService = { program: 'shellwire serve', note: DEFAULT_PORT_NOTE };
/**
 * Options objects of connects that dial a gateway (`connect(host, { via })`, `hosts --via`):
 * their failures name `shellwire gateway` and port 50008, not the daemon's.
 */
export const gatewayDials = new WeakSet<object>();

export const GATEWAY_SERVICE: DialedService = { program: 'shellwire gateway', note: `a shellwire gateway listens on ${DEFAULT_GATEWAY_PORT} by default` };

let sharedContext: SecureContext | null = null;

/** One TLS context for every connection: making one costs ~0.1 ms, which adds up over a fleet. */
function clientSecureContext(): SecureContext {
  sharedContext ??= createSecureContext({ minVersion: TLS_MIN_VERSION, ciphers: TLS_CIPHERS });
  return sharedContext;
}

/**
 * A TLS 1.3 connection that agreed on ALPN `shellwire/1`; the certificate is checked by the
 * caller. Over TCP to `target`, or over `transport` (any byte duplex, already connected:
 * a gateway relay, a NATS tunnel), where `target` only names the host.
 */
export function openTls(target: Target, label: string, timeoutMs: number, signal?: AbortSignal, transport?: Transport, service: DialedService = DAEMON_SERVICE): Promise<TLSSocket> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    // Aborted already: dial nothing (a transport given to us is ours to destroy, as on any failure).
    if (signal?.aborted) {
      if (transport) {
        transport.on('error', ignoreLateError);
        transport.destroy();
      }
      reject(new ConnectionError(ErrorCode.CONNECT_FAILED, `Connecting to ${label} was aborted.`, { host: label }));
      return;
    }
    // TCP_NODELAY from the first byte: Nagle + delayed ACK would add ~40 ms per handshake step.
    const tcp = transport ?? netConnect({ host: target.host, port: target.port, noDelay: true });
    const socket = tlsConnect({
      socket: tcp,
      servername: /^[0-9.:]+$/.test(target.host) ? '' : target.host,
      secureContext: clientSecureContext(),
      ALPNProtocols: [ALPN_PROTOCOL],
      // The certificate is self-signed; trust comes from the pinned fingerprint checked next.
      rejectUnauthorized: false,
    });
    // For the whole life of both, past `cleanup` and past destroy: a stream may emit 'error'
    // while or after it is destroyed (Duplex.from() over PassThroughs emits AbortError from
    // JSStreamSocket's close), and an 'error' with no listener kills the process. What
    // matters was reported already: by `onError` while connecting, by the connection after.
    tcp.on('error', ignoreLateError);
    socket.on('error', ignoreLateError);
    // A transport is connected when we get it: what it says or does is the peer's doing.
    let tcpConnected = transport !== undefined;
    let settled = false;
    tcp.once('connect', () => (tcpConnected = true));
    const timer = setTimeout(() => {
      fail(
        tcpConnected
          ? new ConnectionError(ErrorCode.CONNECT_FAILED, `${label} accepted the connection but said nothing for ${timeoutMs} ms: it is not a shellwire daemon (${service.note}), or one too busy to answer.`, { host: label })
          : new ConnectionError(ErrorCode.CONNECT_FAILED, `Timed out after ${timeoutMs} ms connecting to ${label}: no answer at all (the host is down, or a firewall drops the packets).`, { host: label }),
      );
    }, timeoutMs);
    const onAbort = () => fail(new ConnectionError(ErrorCode.CONNECT_FAILED, `Connecting to ${label} was aborted.`, { host: label }));
    signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = () => {
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      tcp.removeListener('error', onError);
      socket.removeListener('error', onError);
    };
    function fail(error: ShellwireError) {
      if (settled) return;
      cleanup();
      socket.destroy();
      tcp.destroy();
      reject(error);
    }
    function onError(err: NodeJS.ErrnoException) {
      if (settled) return;
      if (err.code === 'ECONNREFUSED') {
        fail(new ConnectionError(ErrorCode.CONNECT_FAILED, `Connection refused by ${label}; is \`${service.program}\` running there, on that port (${service.note})?`, { host: label, cause: err }));
      } else if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') {
        fail(new ConnectionError(ErrorCode.CONNECT_FAILED, `Cannot resolve host name "${target.host}".`, { host: label, cause: err }));
      } else if (tcpConnected && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
        fail(new ConnectionError(ErrorCode.CONNECT_FAILED, `${label} accepted the connection and closed it at once, before TLS: it is not a shellwire daemon (${service.note}), or the daemon refused this address (too many connections from it; see its log).`, { host: label, cause: err }));
      } else if (err.code && /^(ECONN|EHOST|ENET|ETIMEDOUT|EPIPE|EADDR)/.test(err.code)) {
        fail(new ConnectionError(ErrorCode.CONNECT_FAILED, `Cannot connect to ${label}: ${err.message}.`, { host: label, cause: err }));
      } else if (err.code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL') {
        fail(notShellwire(label, { what: 'speaks TLS', detail: `it refused ALPN ${ALPN_PROTOCOL}: another TLS service, such as HTTPS` }, err, service));
      } else if (err.code === 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' || err.code === 'ERR_SSL_UNSUPPORTED_PROTOCOL') {
        fail(new HostVerificationError(ErrorCode.TLS, `${label} speaks TLS but not TLS 1.3, which shellwire requires: it is not a shellwire daemon, or something in between downgrades TLS.`, { host: label, cause: err }));
      } else if (isNotTls(err)) {
        // The peer answered the ClientHello with bytes that are not TLS. Which protocol it
        // was decides the advice, so look again: a short, separate, read-mostly connection
        // (over TCP only: a transport cannot be dialled twice).
        const budget = transport ? 0 : Math.max(0, Math.min(IDENTIFY_SERVICE_MS, timeoutMs - (Date.now() - started)));
        cleanup();
        socket.destroy();
        tcp.destroy();
        void identifyService(target, budget, signal).then((what) => reject(notShellwire(label, what, err, service)));
      } else {
        fail(new HostVerificationError(ErrorCode.TLS, `The TLS handshake with ${label} failed (${tlsReason(err)}): is it a shellwire daemon (${service.note})?`, { host: label, cause: err }));
      }
    }
    tcp.on('error', onError);
    socket.on('error', onError);
    socket.once('secureConnect', () => {
      if (settled) return;
      // A TLS server that ignores ALPN (openssl s_server, many HTTPS servers) completes the
      // handshake; without this check we would go on to ask about its certificate.
      if (socket.alpnProtocol !== ALPN_PROTOCOL) {
        fail(notShellwire(label, { what: 'speaks TLS', detail: `it did not agree to ALPN ${ALPN_PROTOCOL}: another TLS service, such as HTTPS` }, undefined, service));
        return;
      }
      cleanup();
      resolve(socket);
    });
    if (signal?.aborted) onAbort();
  });
}

/** See openTls: errors a stream emits once its failure (or end) was already reported. */
function ignoreLateError(): void {}

/** What a port that is not shellwire speaks, and the evidence. */
export interface ServiceGuess {
  what: string;
  detail: string;
}

/**
 * ssh-keyscan for shellwire: the fingerprint a daemon presents, without logging in (no
 * HELLO is sent, so no credential leaves this machine). Trusting it is the caller's choice.
 */
export async function scanHostKey(target: Target, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<{ host: string; fingerprint: string }> {
  const label = formatTarget(target);
  const socket = await openTls(target, label, options.timeoutMs ?? 10_000, options.signal);
  try {
    const cert = socket.getPeerX509Certificate();
    if (!cert) throw new HostVerificationError(ErrorCode.TLS, `${label} presented no certificate.`, { host: label });
    return { host: label, fingerprint: fingerprintOfCertificate(cert.raw) };
  } finally {
    socket.destroy();
  }
}

function notShellwire(label: string, guess: ServiceGuess, cause?: unknown, service: DialedService = DAEMON_SERVICE): ConnectionError {
  return new ConnectionError(ErrorCode.NOT_SHELLWIRE, `${label} ${guess.what}, not shellwire (${guess.detail}); ${service.note}.`, { host: label, ...(cause !== undefined ? { cause } : {}) });
}

/** OpenSSL's verdicts for a first record that is not TLS at all. */
function isNotTls(err: NodeJS.ErrnoException): boolean {
  return err.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || err.code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || err.code === 'ERR_SSL_HTTP_REQUEST' || err.code === 'ERR_SSL_RECORD_LENGTH_MISMATCH';
}

/** `wrong version number` out of `…:SSL routines:ssl3_get_record:wrong version number:file:line:`. */
export function tlsReason(err: Error): string {
  const match = /SSL routines:[^:]*:([^:]+)/.exec(err.message);
  return match ? match[1]! : err.message.split('\n')[0]!.slice(0, 120);
}

/**
 * What answers on a port that does not speak TLS: listen first (SSH, SMTP, FTP speak
 * first), then, if it stays quiet, ask as HTTP does. Resolves with a phrase for the error.
 */
export function identifyService(target: Target, budgetMs: number, signal?: AbortSignal): Promise<ServiceGuess> {
  const unknown = { what: 'does not speak TLS', detail: 'it answered the TLS handshake with something else' };
  if (budgetMs <= 0 || signal?.aborted) return Promise.resolve(unknown);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const probe = netConnect({ host: target.host, port: target.port });
    const done = () => {
      clearTimeout(quiet);
      clearTimeout(deadline);
      probe.destroy();
      resolve(describeGreeting(Buffer.concat(chunks)) ?? unknown);
    };
    const quiet = setTimeout(() => {
      if (size === 0 && !probe.destroyed) probe.write('HEAD / HTTP/1.0\r\n\r\n');
    }, Math.min(500, budgetMs / 2));
    const deadline = setTimeout(done, budgetMs);
    probe.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= 256 || Buffer.concat(chunks).includes(0x0a)) done();
    });
    probe.on('error', done);
    probe.on('close', done);
  });
}

/** Name the protocol from its first line, or null when there is nothing to go on. */
export function describeGreeting(bytes: Buffer): ServiceGuess | null {
  if (bytes.length === 0) return null;
  const firstLine = bytes.subarray(0, Math.max(0, bytes.indexOf(0x0a)) || bytes.length).toString('latin1').replace(/\r$/, '');
  const shown = JSON.stringify(firstLine.length > 60 ? `${firstLine.slice(0, 60)}…` : firstLine);
  if (firstLine.startsWith('SSH-')) return { what: 'speaks SSH', detail: `it sent ${shown}` };
  if (/^HTTP\/\d/.test(firstLine)) return { what: 'speaks HTTP', detail: `it answered ${shown}` };
  if (/^[\x20-\x7e\t]+$/.test(firstLine)) return { what: 'does not speak TLS', detail: `it said ${shown}` };
  return null;
}

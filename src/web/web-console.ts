/**
 * The web console (`shellwire gateway --web HOST:PORT`, docs/web.md): Fastify over HTTPS
 * with the gateway's own TLS identity (or --web-cert/--web-key), serving the bundled page
 * (dist/ui, built by `npm run build`), the login routes and the /api routes. Every /api
 * route but the login ones passes `requireSession` (guards.ts) before any of its code, and
 * acts only through its session's client connection to this gateway (in-process.ts):
 * the browser is one more client, with the gateway's permissions and audit.
 * Loading this module registers it with the gateway (src/gateway/web-hook.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import nativeRequire from '../native-require.cjs';
import { ErrorCode } from '../errors.js';
import { TLS_CIPHERS, TLS_GROUPS } from '../transport/tls.js';
import type { Gateway } from '../gateway/gateway.js';
import { registerWebConsole, type GatewayWebOptions, type WebConsoleHandle } from '../gateway/web-hook.js';
import { WebSessions } from './sessions.js';
import type { WebDeps } from './web-types.js';
import { admitUpgrade, requireKnownHost, requireSession, sendError } from './guards.js';
import { DEFAULT_WEB_LIMITS, OpenGate, SocketLedger, type WebLimits } from './admission.js';
import { registerLoginRoutes } from './login-routes.js';
import { registerApiRoutes } from './api-routes.js';
import { WEB_CSP, WEB_JSON_BODY_LIMIT, WEB_WS_MAX_PAYLOAD, consoleHosts, consoleOrigins, httpsOrigin } from './web-config.js';

/** Where `npm run build` puts the bundled page: `<package>/dist/ui` (index.html, assets/). */
export function defaultStaticDir(): string {
  // native-require.cts is src/, dist/ or the CLI bundle in dist/: the package is one up.
  return join(resolve(dirname(nativeRequire.location), '..'), 'dist', 'ui');
}

const NO_UI = 'The web console\'s page is not built: run `npm run build` (it bundles ui/ into dist/ui), then reload.\n';

/**
 * Fastify and its plugins, with a require() made at run time: esbuild bundles only `require`
 * and `import` of literal names, so they stay out of dist/shellwire.cjs (they would double it,
 * and every full-bundle command parses it at start: +50 ms, +8 MB). createRequire rather than
 * native-require.cts's `require`: under tsx that one cannot load the JSON files Fastify needs.
 */
function loadFastify() {
  const load = createRequire(nativeRequire.location);
  return {
    Fastify: (load('fastify') as typeof import('fastify')).default,
    fastifyCookie: (load('@fastify/cookie') as typeof import('@fastify/cookie')).default,
    fastifyStatic: (load('@fastify/static') as typeof import('@fastify/static')).default,
    fastifyWebsocket: (load('@fastify/websocket') as typeof import('@fastify/websocket')).default,
  };
}

/** Start the console for `gateway` (GatewayOptions.web). */
export async function startWebConsole(gateway: Gateway, options: GatewayWebOptions, log: Logger): Promise<WebConsoleHandle> {
  const tls = options.cert !== undefined || options.key !== undefined
    ? { cert: readPem(options.cert, '--web-cert'), key: readPem(options.key, '--web-key') }
    : { cert: gateway.server.identity.certPem, key: gateway.server.identity.keyPem };
  const { Fastify } = loadFastify();
  const app = Fastify({
    https: { ...tls, minVersion: 'TLSv1.3', ciphers: TLS_CIPHERS, ecdhCurve: TLS_GROUPS, honorCipherOrder: true },
    logger: false,
    bodyLimit: WEB_JSON_BODY_LIMIT,
    // No limit on a whole request: a push streams a file of any size (Node's headersTimeout
    // still drops a client that never finishes its headers).
    requestTimeout: 0,
    return503OnClosing: true,
    // request.ip: X-Forwarded-For believed only from these proxies (never by default).
    ...(options.trustProxy && options.trustProxy.length > 0 ? { trustProxy: options.trustProxy } : {}),
    // What Node's HTTP parser refuses (a body longer than its Content-Length, a bad header)
    // and what Fastify's router refuses (a bad URL): the documented error shape too.
    clientErrorHandler: clientError,
    frameworkErrors: (err, _request, reply) => sendError(reply, 400, ErrorCode.BAD_REQUEST, `Bad request (${err.message}).`),
  });
  const sessions = new WebSessions({
    log,
    ...(options.sessionIdleMs !== undefined ? { idleMs: options.sessionIdleMs } : {}),
    ...(options.sessionMaxMs !== undefined ? { maxMs: options.sessionMaxMs } : {}),
    ...(options.clock ? { now: options.clock } : {}),
  });
  // Filled once the console listens (port 0 picks its port): no request comes before that.
  const origins: string[] = [];
  const hosts = new Set<string>();
  const limits: WebLimits = { ...DEFAULT_WEB_LIMITS, ...options.limits };
  const deps: WebDeps = { gateway, sessions, log, origins, hosts, limits, ledger: new SocketLedger(limits), opens: new OpenGate(limits) };
  try {
    await build(app, deps, options.staticDir ?? defaultStaticDir());
    await app.listen({ host: options.host, port: options.port });
  } catch (err) {
    sessions.endAll();
    await app.close().catch(() => {});
    throw err;
  }
  const address = app.server.address() as AddressInfo;
  origins.push(...consoleOrigins(address.address, address.port, options.origins ?? []));
  for (const h of consoleHosts(origins)) hosts.add(h);
  const url = `${httpsOrigin(address.address, address.port)}/`;
  const wildcard = address.address === '0.0.0.0' || address.address === '::';
  const publicUrl = options.origins?.[0] !== undefined ? `${options.origins[0]}/` : wildcard ? `${httpsOrigin(hostname(), address.port)}/` : url;
  log.info({ address: address.address, port: address.port, url }, 'web console listening');
  let closing: Promise<void> | null = null;
  return {
    address,
    url,
    publicUrl,
    close: () => {
      closing ??= (async () => {
        sessions.endAll('shutdown');
        await app.close().catch(() => {});
      })();
      return closing;
    },
  };
}

async function build(app: FastifyInstance, deps: WebDeps, staticDir: string): Promise<void> {
  const { fastifyCookie, fastifyStatic, fastifyWebsocket } = loadFastify();
  app.addHook('onRequest', requireKnownHost(deps));
  app.addHook('onSend', async (request, reply, payload) => {
    reply.header('content-security-policy', WEB_CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    if (request.url.startsWith('/api')) reply.header('cache-control', 'no-store');
    return payload;
  });
  // Bad JSON, a body too large, a wrong content type: a clear 400/413/415 in our error
  // shape; anything else a generic 500 (the details go to the log only).
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const status = err.statusCode ?? 500;
    if (status === 413) return sendError(reply, 413, ErrorCode.BAD_REQUEST, `The request body is larger than this route takes (${WEB_JSON_BODY_LIMIT} bytes for JSON).`);
    if (status === 415) return sendError(reply, 415, ErrorCode.BAD_REQUEST, 'Send the body as application/json.');
    if (status >= 400 && status < 500) {
      const what = err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError ? 'The request body is not valid JSON' : 'Bad request';
      return sendError(reply, 400, ErrorCode.BAD_REQUEST, `${what}; send a JSON object as the console's page does.`);
    }
    deps.log.error({ method: request.method, url: request.routeOptions.url, err: err.message }, 'web request failed');
    return sendError(reply, 500, ErrorCode.INTERNAL, 'Internal error in the web console; the gateway\'s log says more.');
  });
  app.setNotFoundHandler((request, reply) => {
    if (request.url.startsWith('/api')) return sendError(reply, 404, ErrorCode.BAD_REQUEST, `No such route: ${request.method} ${request.url.split('?')[0]}.`);
    return reply.code(404).type('text/plain; charset=utf-8').send('Not found.\n');
  });
  await app.register(fastifyCookie);
  await app.register(fastifyWebsocket, { options: { maxPayload: WEB_WS_MAX_PAYLOAD } });

  if (existsSync(join(staticDir, 'index.html'))) {
    // Only index.html and assets/ (source maps and licence notes are under assets/ too).
    await app.register(fastifyStatic, { root: join(staticDir, 'assets'), prefix: '/assets/', index: false, decorateReply: true });
    app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').sendFile('index.html', staticDir));
  } else {
    deps.log.warn({ staticDir }, 'web console page not built (run npm run build)');
    const unbuilt = (_request: unknown, reply: FastifyReply) => reply.code(503).type('text/plain; charset=utf-8').send(NO_UI);
    app.get('/', unbuilt);
    app.get('/assets/*', unbuilt);
  }

  registerLoginRoutes(app, deps);
  await app.register(async (scope) => {
    scope.addHook('onRequest', requireSession(deps));
    scope.addHook('onRequest', admitUpgrade(deps));
    await registerApiRoutes(scope, deps);
    // An /api path no route takes: after the guard (so it tells nothing to strangers), 404
    // before any upgrade.
    scope.route({
      method: ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'],
      url: '/api/*',
      preHandler: async (request, reply) => {
        if (reply.sent) return;
        sendError(reply, 404, ErrorCode.BAD_REQUEST, `No such route: ${request.method} ${request.url.split('?')[0]}.`);
      },
      handler: async (_request, reply) => reply,
    });
  });
}

/**
 * A request Node's HTTP parser cannot read (a body longer than its Content-Length runs into
 * the next request, a malformed header, headers too large): `{error:{code,message}}` as
 * every other answer, then the socket is closed (as Node does: the stream is out of step).
 */
function clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, text, message] = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    ? [408, 'Request Timeout', 'The request did not arrive in time; try again.']
    : err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'The request\'s headers are too large.']
      : [400, 'Bad Request', 'The request is not valid HTTP (is its Content-Length the size of its body?).'];
  const body = JSON.stringify({ error: { code: ErrorCode.BAD_REQUEST, message } });
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${text}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy();
}

function readPem(file: string | undefined, flag: string): string {
  if (file === undefined) throw new Error('--web-cert and --web-key go together: give both, or neither (the gateway\'s own certificate).');
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`Cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}.`);
  }
}

registerWebConsole<Gateway>(startWebConsole);

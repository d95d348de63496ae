/**
 * PUT /api/push?targets=EXPR&path=REMOTE&mode=0644: the request body (raw bytes,
 * `content-length` required) goes into the gateway's put fan-out (one file channel whose OPEN
 * names `hosts`, src/gateway/fanout-put.ts), as `shellwire put FILE TARGETS:REMOTE --via GW`:
 * it crosses to the gateway once, is spooled and checked there, and every host gets a copy it
 * verifies by SHA-256. The body is read only as the gateway's window allows (no buffering here).
 *
 * The answer waits for the gateway's OPEN answer: refused as a whole (no host permitted) is an
 * HTTP 403 with its message. Then a streamed `application/x-ndjson`: `{"type":"hosts"}`,
 * `{"type":"upload","bytes","total"}` as the body goes, per host `{"type":"progress"}` lines
 * live as the gateway pushes to it (its live records, docs/protocol.md §10) and
 * `{"type":"result","host","ok","sha256"?,"bytes"?,"error"?}` as soon as THAT host is done (a
 * refused or unreachable host is its own failed result), `{"type":"done","ok","failed"}`. Paths are passed as given: the
 * hosts' rules decide what they accept.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { streamHashingReader } from '../channel/file-hash.js';
import { ErrorCode, ShellwireError } from '../errors.js';
import { gatewayTargetsInventory } from '../fleet/gateway-hosts.js';
import { resolveTargets } from '../fleet/targets.js';
import { MAX_TARGET_EXPR } from './hosts-route.js';
import { WEB_VIA, badRequest, errorBody, queryOsText, queryText, sendError, sessionOf } from './route-kit.js';

/** The one body type a push takes (or none): the file's raw bytes. */
export const PUSH_CONTENT_TYPE = 'application/octet-stream';

/** Upload progress lines at most this often (bytes apart), plus the last. */
const UPLOAD_STEP = 1024 * 1024;

export async function registerPushRoute(app: FastifyInstance): Promise<void> {
  await app.register(async (scope) => {
    // The body stays a stream: the route reads it as the gateway takes it. Fastify's own
    // parsers (application/json, text/plain) are removed: one would eat a file's bytes.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
    scope.put('/api/push', (request, reply) => push(request, reply));
  });
}

async function push(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> {
  let answering = false;
  try {
    const { gateway } = sessionOf(request);
    // Raw bytes only: any other type (a form, JSON, text) is refused before a host hears of it.
    const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== '' && type !== PUSH_CONTENT_TYPE) {
      return sendError(reply, request, new ShellwireError(ErrorCode.BAD_REQUEST, `Send the file as ${PUSH_CONTENT_TYPE} (the raw bytes), not ${JSON.stringify(type)}.`), 415);
    }
    const targets = queryText(request, 'targets');
    // The path's exact bytes (%FF is the byte 0xff): the host's rules decide what it accepts.
    const path = queryOsText(request, 'path');
    const modeText = queryText(request, 'mode') ?? '0644';
    if (targets === undefined || targets.trim() === '' || targets.length > MAX_TARGET_EXPR) throw badRequest('Name the hosts: ?targets=@web (a target expression).');
    if (path === undefined || path === '') throw badRequest('Name the remote path: ?path=/tmp/file.');
    if (!/^0?[0-7]{3,4}$/.test(modeText)) throw badRequest(`mode must be octal permissions such as 0644, got ${JSON.stringify(modeText)}.`);
    const lengthText = request.headers['content-length'];
    if (lengthText === undefined || !/^\d{1,16}$/.test(lengthText)) throw new ShellwireError(ErrorCode.BAD_REQUEST, 'A push needs a Content-Length (the file\'s size in bytes); chunked uploads are not taken.');
    const size = Number(lengthText);
    const inventory = await gatewayTargetsInventory(gateway, WEB_VIA, targets);
    const hosts = resolveTargets(targets, inventory, { allowEmpty: true }).map((h) => h.name);
    if (hosts.length === 0) throw new ShellwireError(ErrorCode.NO_HOSTS_MATCHED, `No host you may reach matches ${JSON.stringify(targets)}.`);
    const body = request.raw;
    const line = (message: object) => {
      if (!reply.raw.destroyed) reply.raw.write(`${JSON.stringify(message)}\n`);
    };
    const aborted = new AbortController();
    // The browser went away: stop the upload (the gateway removes its spool).
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) aborted.abort();
    });
    let reported = 0;
    let ok = 0;
    const result = await gateway.putSourceToHosts(
      { label: path, size, mode: parseInt(modeText, 8), mtimeMs: Date.now(), reader: streamHashingReader(body) },
      hosts, path,
      {
        signal: aborted.signal,
        onOpened: () => {
          answering = true;
          reply.hijack();
          reply.raw.writeHead(200, { ...headersOf(reply), 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
          line({ type: 'hosts', hosts });
        },
        onProgress: ({ bytes }) => {
          if (bytes !== size && bytes - reported < UPLOAD_STEP) return;
          reported = bytes;
          line({ type: 'upload', bytes, total: size });
        },
        // The gateway already paces these (at most every ~100 ms per host).
        onHostProgress: ({ host, bytes, total }) => line({ type: 'progress', host, bytes, total }),
        onHostResult: (h) => {
          line({ type: 'result', host: h.host, ok: h.ok, ...(h.sha256 ? { sha256: h.sha256 } : {}), ...(h.ok ? { bytes: h.bytes } : {}), ...(h.error ? { error: h.error } : {}) });
          if (h.ok) ok += 1;
        },
      },
    );
    line({ type: 'done', ok, failed: result.hosts.length - ok });
    reply.raw.end();
  } catch (err) {
    if (!answering) return sendError(reply, request, err);
    // The upload failed after the answer began: the error is the last line.
    const e = errorBody(err, request);
    if (!reply.raw.destroyed) reply.raw.end(`${JSON.stringify({ type: 'error', code: e.code, message: e.message })}\n`);
  }
}

/** Headers the app's hooks set (security headers): kept on the hijacked answer. */
function headersOf(reply: FastifyReply): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(reply.getHeaders())) if (typeof v === 'string' || typeof v === 'number') out[k] = String(v);
  return out;
}

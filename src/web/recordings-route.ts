/**
 * GET /api/recordings?operator=&host=&limit=: the recordings the user may replay (the
 * gateway's `recordings` op: her own, everyone's with `recordings: all`). GET
 * /api/recordings/:id: one asciicast file, streamed as the gateway sends it (op `recording`,
 * audited there as `replayed`); someone else's id is a 404, as an unknown one.
 */
import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { badRequest, queryText, sendError, sessionOf } from './route-kit.js';

export function registerRecordingsRoutes(app: FastifyInstance): void {
  app.get('/api/recordings', async (request, reply) => {
    try {
      const { gateway } = sessionOf(request);
      const operator = queryText(request, 'operator');
      const params: { op: string } & Record<string, unknown> = { op: 'recordings' };
      if (operator !== undefined && operator !== '') params.user = operator;
      let recordings = JSON.parse((await gateway.gatewayRequest(params)).toString('utf8')) as Array<Record<string, unknown>>;
      const host = queryText(request, 'host');
      if (host !== undefined && host !== '') recordings = recordings.filter((r) => r.host === host);
      const limit = queryText(request, 'limit');
      if (limit !== undefined && limit !== '') {
        if (!/^\d{1,7}$/.test(limit) || Number(limit) < 1) throw badRequest(`limit must be a whole number of at least 1, got ${JSON.stringify(limit)}.`);
        recordings = recordings.slice(0, Number(limit));
      }
      return reply.send({ recordings });
    } catch (err) {
      return sendError(reply, request, err);
    }
  });

  app.get<{ Params: { id: string } }>('/api/recordings/:id', async (request, reply) => {
    try {
      const { gateway } = sessionOf(request);
      const id = request.params.id;
      if (id.length === 0 || id.length > 256) throw badRequest('A recording id is 1 to 256 characters.');
      // Streamed: the first chunk decides the status (a refusal arrives before any byte).
      const body = new PassThrough();
      // A refusal before any byte is the answer's status (below); later, the reply sees the error and ends.
      body.on('error', () => {});
      let first: (() => void) | null = null;
      const started = new Promise<void>((resolve) => (first = resolve));
      const done = gateway.gatewayRequest({ op: 'recording', id }, {
        onData: (chunk) => {
          first?.();
          first = null;
          body.write(chunk);
        },
      });
      done.then(() => body.end(), (err: unknown) => body.destroy(err as Error));
      request.raw.once('close', () => {
        if (!body.writableEnded) body.destroy();
      });
      await Promise.race([started, done]);
      return reply.type(id.endsWith('.out') ? 'application/octet-stream' : 'application/x-asciicast').send(body);
    } catch (err) {
      return sendError(reply, request, err);
    }
  });
}

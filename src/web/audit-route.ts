/**
 * GET /api/audit?user=&host=&kind=&since=&until=&grep=&failed=1&limit=N: rows of the
 * gateway's audit log through its `audit` op (her own rows; everyone's with users.yaml
 * `audit: all`), newest first, `more` when older rows match too. The gateway checks and
 * audits the read; this route only passes the filters on.
 */
import type { FastifyInstance } from 'fastify';
import { badRequest, queryFlag, queryText, sendError, sessionOf } from './route-kit.js';

export function registerAuditRoute(app: FastifyInstance): void {
  app.get('/api/audit', async (request, reply) => {
    try {
      const { gateway } = sessionOf(request);
      const params: { op: string } & Record<string, unknown> = { op: 'audit' };
      // `host` and `kind` are OPEN header fields: the op names these filters onHost and event.
      for (const [query, param] of [['user', 'user'], ['host', 'onHost'], ['kind', 'event'], ['since', 'since'], ['until', 'until'], ['grep', 'grep']] as const) {
        const v = queryText(request, query);
        if (v !== undefined && v !== '') params[param] = v;
      }
      if (queryFlag(request, 'failed')) params.failed = true;
      const limit = queryText(request, 'limit');
      if (limit !== undefined && limit !== '') {
        if (!/^\d{1,7}$/.test(limit)) throw badRequest(`limit must be a whole number, got ${JSON.stringify(limit)}.`);
        params.limit = Number(limit);
      }
      const answer = JSON.parse((await gateway.gatewayRequest(params)).toString('utf8')) as { rows: unknown[]; more: boolean };
      return reply.send({ rows: answer.rows, more: answer.more });
    } catch (err) {
      return sendError(reply, request, err);
    }
  });
}

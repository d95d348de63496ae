/**
 * GET /api/hosts[?probe=1]: the hosts the user may reach (the gateway's `hosts` op: name,
 * labels, groups; with probe, `reachable`, `latencyMs`, `error` as the gateway found them).
 * GET /api/targets?expr=EXPR: a target expression resolved over those hosts as
 * `run --via GW EXPR` resolves it (fleet/targets.ts over gatewayInventory).
 */
import type { FastifyInstance } from 'fastify';
import { gatewayInventory, parseGatewayHosts } from '../fleet/gateway-hosts.js';
import { resolveTargets } from '../fleet/targets.js';
import { WEB_VIA, badRequest, queryFlag, queryText, sendError, sessionOf } from './route-kit.js';

/** Longest target expression taken (a hand-made one cannot make the resolver work for long). */
export const MAX_TARGET_EXPR = 4096;

export function registerHostsRoutes(app: FastifyInstance): void {
  app.get('/api/hosts', async (request, reply) => {
    try {
      const { gateway } = sessionOf(request);
      const wantProbe = queryFlag(request, 'probe');
      const answer = await gateway.gatewayRequest(wantProbe ? { op: 'hosts', probe: true } : { op: 'hosts' });
      const listed = parseGatewayHosts(answer, WEB_VIA);
      const raw = JSON.parse(answer.toString('utf8')) as Array<Record<string, unknown>>;
      const hosts = listed.map((h, i) => {
        const r = raw[i] ?? {};
        return {
          ...h,
          ...(typeof r.reachable === 'boolean' ? { reachable: r.reachable } : {}),
          ...(typeof r.latencyMs === 'number' ? { latencyMs: r.latencyMs } : {}),
          ...(typeof r.error === 'string' ? { error: r.error } : {}),
        };
      });
      return reply.send({ hosts });
    } catch (err) {
      return sendError(reply, request, err);
    }
  });

  app.get('/api/targets', async (request, reply) => {
    try {
      const { gateway } = sessionOf(request);
      const expr = queryText(request, 'expr');
      if (expr === undefined || expr.trim() === '') throw badRequest('Give a target expression: ?expr=@web or ?expr=web[01-03],!web02.');
      if (expr.length > MAX_TARGET_EXPR) throw badRequest(`A target expression is at most ${MAX_TARGET_EXPR} characters.`);
      const hosts = await resolveWebTargets(gateway, expr);
      return reply.send({ hosts: hosts.map((h) => h.name) });
    } catch (err) {
      return sendError(reply, request, err);
    }
  });
}

/** EXPR over the user's hosts at the gateway (no match: an empty list, not an error). */
export async function resolveWebTargets(gateway: import('../client/connection.js').Connection, expr: string): ReturnType<typeof resolveTargets> extends infer R ? Promise<R> : never {
  const inventory = { ...gatewayInventory(WEB_VIA, parseGatewayHosts(await gateway.gatewayRequest({ op: 'hosts' }), WEB_VIA)), gatewayHosts: { where: 'this gateway', listHint: 'the Hosts page lists the ones you may reach' } };
  return resolveTargets(expr, inventory, { allowEmpty: true });
}

/**
 * The console's /api routes beyond login (hosts, targets, terminal, run, push, audit,
 * recordings: docs/web.md). STUB: helper B replaces this file with the real one; the
 * signature stays. `app` is a scope in which every route already passed `requireSession`
 * (session cookie, Origin on state-changing requests and upgrades, CSRF on state-changing
 * requests): handlers take `sessionOf(request)` and act only through `session.gateway`.
 */
import type { FastifyInstance } from 'fastify';
import type { WebDeps } from './web-types.js';

export async function registerApiRoutes(app: FastifyInstance, deps: WebDeps): Promise<void> {
  void app;
  void deps;
}

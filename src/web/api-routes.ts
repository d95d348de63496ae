/**
 * The web console's API (WEB-SPEC.md "HTTP contract"), behind web-core's guards (session,
 * CSRF, Origin): every route acts through the browser's one client connection to the gateway
 * (`request.webSession.gateway`), so the gateway's policy and audit decide and record exactly
 * as for the CLI. Hosts and targets (hosts-route.ts), terminal (terminal-route.ts), run
 * (run-route.ts), push (push-route.ts), audit (audit-route.ts), recordings (recordings-route.ts).
 */
import type { FastifyInstance } from 'fastify';
import type { WebDeps } from './web-types.js';
import { registerAuditRoute } from './audit-route.js';
import { registerHostsRoutes } from './hosts-route.js';
import { registerPushRoute } from './push-route.js';
import { registerRecordingsRoutes } from './recordings-route.js';
import { registerRunRoute } from './run-route.js';
import { registerTerminalRoute } from './terminal-route.js';

/**
 * Register every /api route but login/session (web-core's) in `app`, a scope whose every
 * route already passed `requireSession`. `_deps` is for routes that need more than the session.
 */
export async function registerApiRoutes(app: FastifyInstance, _deps?: WebDeps): Promise<void> {
  registerHostsRoutes(app);
  registerAuditRoute(app);
  registerRecordingsRoutes(app);
  registerTerminalRoute(app);
  registerRunRoute(app);
  await registerPushRoute(app);
}

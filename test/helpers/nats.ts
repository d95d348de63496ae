/**
 * Real nats-server processes for tests (Debian's /usr/sbin/nats-server; CI installs the
 * `nats-server` package): one server, or a three-server cluster, on free loopback ports, each
 * with its own temp dir, stopped by PID. Never a mock broker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './fixtures.js';

export const NATS_SERVER = process.env.NATS_SERVER ?? '/usr/sbin/nats-server';

export interface NatsServer {
  /** `nats://127.0.0.1:PORT` */
  url: string;
  port: number;
  clusterPort?: number;
  pid: number;
  child: ChildProcess;
  /** Everything it logged. */
  log(): string;
  /** SIGKILL (a crash) and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM, wait, remove its dir. */
  stop(): Promise<void>;
}

export interface NatsServerOptions {
  /** Extra nats-server config (e.g. an `authorization { … }` block). */
  config?: string;
  /** Cluster: this server's route port and the others' route URLs. */
  cluster?: { port: number; routes: string[]; name?: string };
  port?: number;
}

/** Start one nats-server; resolves when it is ready for clients. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'shellwire-nats-'));
  const port = options.port ?? (await freePort());
  const lines = [`listen: "127.0.0.1:${port}"`, 'max_payload: 1048576'];
  if (options.cluster) {
    lines.push(
      `cluster { name: "${options.cluster.name ?? 'swtest'}"\n listen: "127.0.0.1:${options.cluster.port}"\n routes: [${options.cluster.routes.map((r) => `"${r}"`).join(', ')}] }`,
    );
  }
  if (options.config) lines.push(options.config);
  const configFile = join(dir, 'nats.conf');
  writeFileSync(configFile, `${lines.join('\n')}\n`);
  const child = spawn(NATS_SERVER, ['-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  child.stdout!.on('data', (c: Buffer) => out.push(c));
  child.stderr!.on('data', (c: Buffer) => out.push(c));
  const log = () => Buffer.concat(out).toString('utf8');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!/Server is ready/.test(log())) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`nats-server did not start on ${port}:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  let stopped = false;
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    ...(options.cluster ? { clusterPort: options.cluster.port } : {}),
    pid: child.pid!,
    child,
    log,
    kill: () => end('SIGKILL'),
    async stop() {
      if (stopped) return;
      stopped = true;
      await end('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface NatsCluster {
  servers: NatsServer[];
  /** `nats://A,nats://B,nats://C` */
  urls: string;
  stop(): Promise<void>;
}

/** Three nats-servers routed to each other; resolves once each sees the other two. */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const clusterPorts: number[] = [];
  for (let i = 0; i < size; i++) clusterPorts.push(await freePort());
  const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`);
  const servers = await Promise.all(clusterPorts.map((port, i) => startNatsServer({ cluster: { port, routes: routes.filter((_, j) => j !== i) } })));
  const deadline = Date.now() + 10_000;
  while (!servers.every((s) => (s.log().match(/Route connection created/g) ?? []).length >= size - 1)) {
    if (Date.now() > deadline) {
      await Promise.all(servers.map((s) => s.stop()));
      throw new Error(`the nats cluster did not form:\n${servers.map((s) => s.log()).join('\n---\n')}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    servers,
    urls: servers.map((s) => s.url).join(','),
    stop: async () => void (await Promise.all(servers.map((s) => s.stop()))),
  };
}

/**
 * The live status line on a TTY's stderr while a run is in progress:
 * `12 done | 1 failed | 5 running | 30 queued   slowest: web03 4.1s, web07 3.9s`; with a
 * `detail` (a put through a gateway: how far each host's copy is), `slowest: web03 4.1s 45%`.
 * Callers `clear()` it before printing anything else and `render()` it afterwards, so it
 * never ends up in the middle of output.
 */
import type { FleetRun } from './run-on.js';
import { truncateColumns } from './columns.js';

export const STATUS_INTERVAL_MS = 200;

export class StatusLine {
  #run: Pick<FleetRun, 'counts' | 'running'>;
  #color: boolean;
  #timer: NodeJS.Timeout | null = null;
  #shown = false;
  #stream: NodeJS.WriteStream;
  #detail: ((host: string) => string | undefined) | undefined;

  constructor(run: Pick<FleetRun, 'counts' | 'running'>, style: { color: boolean }, stream: NodeJS.WriteStream = process.stderr, detail?: (host: string) => string | undefined) {
    this.#run = run;
    this.#detail = detail;
    this.#color = style.color;
    this.#stream = stream;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.render(), STATUS_INTERVAL_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.clear();
  }

  clear(): void {
    if (!this.#shown) return;
    this.#stream.write('\r\x1b[K');
    this.#shown = false;
  }

  render(): void {
    if (!this.#timer) return;
    const text = this.text();
    // One column spare: writing the last column would wrap on some terminals.
    const width = (this.#stream.columns || 80) - 1;
    this.#stream.write(`\r\x1b[K${truncateColumns(text, width)}`);
    this.#shown = true;
  }

  text(): string {
    const c = this.#run.counts();
    const failed = this.#color && c.failed > 0 ? `\x1b[31m${c.failed} failed\x1b[0m` : `${c.failed} failed`;
    const slowest = this.#run
      .running()
      .slice(0, 3)
      .map((r) => {
        const extra = this.#detail?.(r.host);
        return `${r.host} ${(r.elapsedMs / 1000).toFixed(1)}s${extra ? ` ${extra}` : ''}`;
      });
    return `${c.ok} done | ${failed} | ${c.running} running | ${c.queued} queued${slowest.length ? `   slowest: ${slowest.join(', ')}` : ''}`;
  }
}

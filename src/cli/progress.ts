/**
 * The transfer progress line on a terminal (stderr), as scp draws it: name, bar, percent,
 * bytes, rate and ETA, redrawn at most 10 times a second and finished with a newline.
 * Callers create it only when stderr is a TTY and --quiet is not given.
 */
import type { TransferProgress } from '../client/files/common.js';

const REDRAW_MS = 100;

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

export class ProgressLine {
  #stream: NodeJS.WriteStream;
  #current: string | null = null;
  #startedAt = 0;
  #lastDraw = 0;
  #last: TransferProgress | null = null;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.#stream = stream;
  }

  update(progress: TransferProgress): void {
    const key = `${progress.local}\0${progress.remote}`;
    if (key !== this.#current) {
      this.finish();
      this.#current = key;
      this.#startedAt = performance.now();
      this.#lastDraw = 0;
    }
    this.#last = progress;
    const now = performance.now();
    if (progress.bytes >= progress.size || now - this.#lastDraw >= REDRAW_MS) {
      this.#lastDraw = now;
      this.#draw(progress, now, false);
    }
  }

  /** End the current line (call when a file is done or failed). */
  finish(): void {
    if (this.#current === null || !this.#last) return;
    this.#draw(this.#last, performance.now(), true);
    this.#stream.write('\n');
    this.#current = null;
    this.#last = null;
  }

  #draw(p: TransferProgress, now: number, final: boolean): void {
    const elapsed = (now - this.#startedAt) / 1000;
    const moved = p.bytes - p.resumedFrom;
    const rate = elapsed > 0 ? moved / elapsed : 0;
    const percent = p.size === 0 ? 100 : Math.floor((p.bytes / p.size) * 100);
    const eta = final ? formatDuration(elapsed) : rate > 0 ? `${formatDuration((p.size - p.bytes) / rate)} ETA` : '--:-- ETA';
    const name = (p.direction === 'put' ? p.local : p.remote).split('/').pop() ?? '';
    const stats = ` ${String(percent).padStart(3)}% ${formatBytes(p.bytes).padStart(10)} ${`${formatBytes(rate)}/s`.padStart(12)} ${eta.padStart(9)}`;
    const width = Math.max(40, (this.#stream.columns || 80) - 1);
    const room = width - stats.length;
    const nameWidth = Math.max(8, Math.floor(room * 0.5));
    const barWidth = Math.max(0, room - nameWidth - 3);
    const filled = Math.round((barWidth * percent) / 100);
    const shown = name.length > nameWidth ? `…${name.slice(name.length - nameWidth + 1)}` : name.padEnd(nameWidth);
    const bar = barWidth > 0 ? ` [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]` : '';
    this.#stream.write(`\r${shown}${bar}${stats}`);
  }
}

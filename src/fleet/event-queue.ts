/**
 * The queue between the fan-out engine and whoever iterates its events. It counts the
 * output bytes it holds: above `highWaterMark` the engine pauses the hosts' output streams
 * (which stops returning window credit, so the remote commands slow down), and resumes
 * them once the consumer has drained it below half. A slow terminal therefore never makes
 * the client buffer a thousand hosts' output without bound.
 */
export const DEFAULT_QUEUE_HIGH_WATER_MARK = 4 * 1024 * 1024;

export class EventQueue<T> {
  #items: Array<{ item: T; bytes: number }> = [];
  #head = 0;
  #bytes = 0;
  #ended = false;
  #waiter: (() => void) | null = null;
  #highWaterMark: number;
  #onDrain: () => void;
  #congested = false;

  constructor(highWaterMark: number, onDrain: () => void) {
    this.#highWaterMark = highWaterMark;
    this.#onDrain = onDrain;
  }

  /** True while the queue holds more output than its high-water mark. */
  get congested(): boolean {
    return this.#congested;
  }

  push(item: T, bytes = 0): void {
    if (this.#ended) return;
    this.#items.push({ item, bytes });
    this.#bytes += bytes;
    if (this.#bytes > this.#highWaterMark) this.#congested = true;
    this.#wake();
  }

  end(): void {
    this.#ended = true;
    this.#wake();
  }

  async *drain(): AsyncGenerator<T> {
    for (;;) {
      if (this.#head < this.#items.length) {
        const { item, bytes } = this.#items[this.#head]!;
        this.#items[this.#head] = undefined as never;
        this.#head++;
        if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
          this.#items = this.#items.slice(this.#head);
          this.#head = 0;
        }
        this.#bytes -= bytes;
        if (this.#congested && this.#bytes <= this.#highWaterMark / 2) {
          this.#congested = false;
          this.#onDrain();
        }
        yield item;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }
}

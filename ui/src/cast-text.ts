/**
 * An asciicast v2 recording made fit for asciinema-player. The player refuses a whole
 * recording for one bad line, and one with no events at all, and then shows only its error
 * overlay (a 💥 that renders as an empty box without an emoji font). Two kinds of recording are
 * normal here and must not end like that: one still being written (its last line is cut off
 * mid-write) and a session that ended before anything was shown (a header, no events).
 * So: the header and the events that parse are kept, in order; what does not parse is counted.
 * Pure: unit-tested.
 */
export interface PlayableCast {
  /** The header and the well-formed events, one a line; null when the header itself is bad. */
  text: string | null;
  /** How many events it has. */
  events: number;
  /** Lines dropped because they were not `[time, code, data]` JSON (a torn last line). */
  dropped: number;
}

export function playableCast(cast: string): PlayableCast {
  const lines = cast.split('\n').filter((l) => l.trim() !== '');
  let header: unknown;
  try {
    header = JSON.parse(lines[0] ?? '');
  } catch {
    header = null;
  }
  if (typeof header !== 'object' || header === null || (header as { version?: unknown }).version !== 2) return { text: null, events: 0, dropped: lines.length };
  const kept = [lines[0]!];
  let dropped = 0;
  for (const line of lines.slice(1)) {
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch {
      event = null;
    }
    if (Array.isArray(event) && event.length >= 3 && typeof event[0] === 'number' && typeof event[1] === 'string' && typeof event[2] === 'string') kept.push(line);
    else dropped++;
  }
  return { text: `${kept.join('\n')}\n`, events: kept.length - 1, dropped };
}

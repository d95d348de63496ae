/**
 * Reads a command's output socket into buffers its consumer chooses, instead of a fresh
 * 64 KiB buffer per read (what a net.Socket does by default: under a fast stream that is
 * external memory V8 answers with full mark-sweep collections, and a copy later when the
 * bytes go into a frame). A consumer that attaches a `ReadTarget` (the daemon's output pump)
 * has the kernel write straight into the payload of the frame it will send.
 *
 * Built on net.Socket's `onread` option, which only a socket's constructor takes: the
 * spawner's accepted socket is re-created over the same handle (`directReadable`). Until a
 * target is attached, and for any other consumer, the socket behaves as before: reads go into
 * one reused buffer and are pushed as copies, so 'data', pause/resume, 'end' and backpressure
 * work unchanged.
 */
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';

/** Size of the reused buffer of a socket without a target (Node's own read size). */
const READ_SIZE = 64 * 1024;

/** Where the reads of a direct socket land. */
export interface ReadTarget {
  /** The buffer the next read lands in (it may fill all of it); called after each read. */
  buffer(): Buffer;
  /**
   * `bytes` bytes were read into the start of `buffer`: the last one `buffer()` gave (the
   * target's again), except for the first read after attaching, which lands in the buffer
   * chosen before (`sharedReadBuffer()`: copy from it, never keep it). Return false to stop
   * reading until the socket is resumed.
   */
  filled(buffer: Buffer, bytes: number): boolean;
}

interface DirectState {
  target: ReadTarget | null;
}

/**
 * The one buffer every direct socket without a target reads into: a read and its callback
 * (which copies the bytes out) run together on the event loop, so one buffer serves them all
 * and an idle socket holds none.
 */
let scratch: Buffer | null = null;

/** The shared read buffer (for a target that has no buffer of its own to offer). */
export function sharedReadBuffer(): Buffer {
  return (scratch ??= Buffer.allocUnsafeSlow(READ_SIZE));
}

const STATES = new WeakMap<Readable, DirectState>();

type HandleSocket = Socket & { _handle: { readStop(): number; reading: boolean } | null };

/**
 * The same socket, re-created to read into chosen buffers; `socket` itself is left without a
 * handle and must not be used any more. Returns `socket` unchanged when that cannot be done
 * safely (no handle; its readable side already ended).
 */
export function directReadable(socket: Socket): Socket {
  const old = socket as HandleSocket;
  const handle = old._handle;
  if (!handle || old.readableEnded || old.destroyed || (old as unknown as { _readableState: { ended: boolean } })._readableState.ended) return socket;
  // Bytes the old socket read already (its header read may have taken more than the header).
  const early: Buffer[] = [];
  for (let chunk: Buffer | null; (chunk = old.read() as Buffer | null) !== null; ) early.push(chunk);
  if (handle.reading) {
    handle.reading = false;
    handle.readStop();
  }
  old._handle = null;
  old.removeAllListeners();
  const state: DirectState = { target: null };
  const direct = new Socket({
    handle,
    allowHalfOpen: true,
    onread: {
      buffer: () => (state.target ? state.target.buffer() : sharedReadBuffer()),
      callback: (bytes: number, buffer: Uint8Array) => {
        if (state.target) return state.target.filled(buffer as Buffer, bytes);
        // No target: a copy goes into the stream, as a plain socket's read would.
        return direct.push(Buffer.from((buffer as Buffer).subarray(0, bytes)));
      },
    },
  } as ConstructorParameters<typeof Socket>[0] & { handle: unknown });
  STATES.set(direct, state);
  for (const chunk of early) direct.push(chunk);
  return direct;
}

/**
 * Have `stream`'s reads land in `target`'s buffers from now on. False (nothing changed) when
 * `stream` is not a direct socket; the caller then reads it the usual way. What the stream
 * buffered already is the caller's to `read()` first.
 */
export function readInto(stream: Readable, target: ReadTarget): boolean {
  const state = STATES.get(stream);
  if (!state) return false;
  state.target = target;
  return true;
}

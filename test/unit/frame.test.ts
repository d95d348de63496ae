/**
 * Frame codec (docs/protocol.md §2): layout, limits, split writes, byte-at-a-time
 * decoding, and fast-check properties over arbitrary frames, chunkings and garbage.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  encodeFrame, encodeFrameHeader, FrameDecoder, FrameType, frameTypeName,
  FRAME_HEADER_SIZE, PROTOCOL_MAX_PAYLOAD, PREAUTH_MAX_PAYLOAD, STREAM_FRAME_TYPES, type Frame,
} from '../../src/protocol/frame.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';

const ALL_TYPES = Object.values(FrameType) as FrameType[];
const ERROR_CODES = new Set<string>(Object.values(ErrorCode));

/** A decoder that collects its frames, copying payloads so later chunk reuse cannot hide bugs. */
function collector(options?: { maxPayload?: number }): { decoder: FrameDecoder; frames: Frame[] } {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((frame) => frames.push({ ...frame, payload: Buffer.from(frame.payload) }), options);
  return { decoder, frames };
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex').replace(/(..)(?!$)/g, '$1 ');
}

function plain(frames: Frame[]): { type: number; channel: number; payload: string }[] {
  return frames.map((f) => ({ type: f.type, channel: f.channel, payload: f.payload.toString('hex') }));
}

/** Cut `bytes` into chunks whose sizes cycle through `sizes`. */
function cut(bytes: Buffer, sizes: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let offset = 0;
  for (let i = 0; offset < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    chunks.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}

/** Record every Buffer.allocUnsafe size while `fn` runs (the decoder allocates payloads with it). */
function recordAllocations<T>(fn: () => T): { result?: T; error?: unknown; sizes: number[] } {
  const original = Buffer.allocUnsafe;
  const sizes: number[] = [];
  Buffer.allocUnsafe = ((size: number) => {
    sizes.push(size);
    return original(size);
  }) as typeof Buffer.allocUnsafe;
  try {
    return { result: fn(), sizes };
  } catch (error) {
    return { error, sizes };
  } finally {
    Buffer.allocUnsafe = original;
  }
}

const u32 = fc.oneof(
  fc.constantFrom(0, 1, 2, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff),
  fc.maxSafeNat().map((n) => n % 2 ** 32),
);

/** Deterministic filler, so a 70 KiB payload costs one integer of generation, not 70 000. */
function filled(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const payloadArb = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 70 * 1024 }), fc.integer()).map(([n, seed]) => filled(n, seed)) },
);

const frameArb = fc.record({
  type: fc.constantFrom(...ALL_TYPES),
  channel: u32,
  payload: payloadArb,
});

describe('encodeFrame', () => {
  test('writes u32 length | u8 type | u32 channel | payload, big-endian', () => {
    const frame = encodeFrame(FrameType.STDERR, 0x01020304, Buffer.from('ok'));
    assert.equal(hex(frame), '00 00 00 02 15 01 02 03 04 6f 6b');
    assert.equal(hex(encodeFrame(FrameType.CLOSE, 7)), '00 00 00 00 1a 00 00 00 07');
    assert.equal(hex(encodeFrame(FrameType.PING, 0xffffffff, new Uint8Array([0xde, 0xad]))), '00 00 00 02 04 ff ff ff ff de ad');
  });

  test('encodeFrameHeader is the header encodeFrame writes', () => {
    const payload = Buffer.from('header check');
    const frame = encodeFrame(FrameType.STDIN, 42, payload);
    assert.deepEqual(encodeFrameHeader(FrameType.STDIN, 42, payload.length), frame.subarray(0, FRAME_HEADER_SIZE));
    assert.equal(frame.length, FRAME_HEADER_SIZE + payload.length);
  });

  test('accepts exactly the protocol maximum and refuses one byte more', () => {
    assert.equal(encodeFrame(FrameType.STDOUT, 1, Buffer.alloc(PROTOCOL_MAX_PAYLOAD)).length, FRAME_HEADER_SIZE + PROTOCOL_MAX_PAYLOAD);
    assert.throws(
      () => encodeFrame(FrameType.STDOUT, 1, Buffer.alloc(PROTOCOL_MAX_PAYLOAD + 1)),
      (err: unknown) => err instanceof ProtocolError && err.code === ErrorCode.FRAME_TOO_LARGE,
    );
  });

  test('limits have the values the spec gives', () => {
    assert.equal(FRAME_HEADER_SIZE, 9);
    assert.equal(PROTOCOL_MAX_PAYLOAD, 1024 * 1024);
    assert.equal(PREAUTH_MAX_PAYLOAD, 16 * 1024);
  });

  test('frameTypeName names known types and prints unknown ones as hex', () => {
    assert.equal(frameTypeName(FrameType.WINDOW), 'WINDOW');
    assert.equal(frameTypeName(0x1a), 'CLOSE');
    assert.equal(frameTypeName(0x7f), '0x7f');
    assert.equal(frameTypeName(0), '0x00');
  });
});

describe('FrameDecoder', () => {
  const sample = [
    { type: FrameType.HELLO, channel: 0, payload: Buffer.from('{"magic":"shellwire"}') },
    { type: FrameType.CLOSE, channel: 3, payload: Buffer.alloc(0) },
    { type: FrameType.STDOUT, channel: 0xfffffffe, payload: Buffer.from('hello\n') },
    { type: FrameType.EOF, channel: 1, payload: Buffer.alloc(0) },
    { type: FrameType.WINDOW, channel: 1, payload: Buffer.from([0, 0x10, 0, 0]) },
  ];
  const stream = Buffer.concat(sample.map((f) => encodeFrame(f.type, f.channel, f.payload)));
  const expected = plain(sample);

  test('one chunk with several frames gives every frame in order', () => {
    const { decoder, frames } = collector();
    decoder.push(stream);
    assert.deepEqual(plain(frames), expected);
    assert.equal(decoder.idle, true);
    assert.equal(decoder.bufferedBytes, 0);
  });

  test('a stream split at every possible offset gives the same frames', () => {
    for (let i = 0; i <= stream.length; i++) {
      const { decoder, frames } = collector();
      decoder.push(stream.subarray(0, i));
      decoder.push(stream.subarray(i));
      assert.deepEqual(plain(frames), expected, `split at ${i}`);
      assert.equal(decoder.idle, true, `split at ${i}`);
    }
  });

  test('a stream split at every pair of offsets gives the same frames', () => {
    for (let i = 0; i <= stream.length; i++) {
      for (let j = i; j <= stream.length; j++) {
        const { decoder, frames } = collector();
        decoder.push(stream.subarray(0, i));
        decoder.push(stream.subarray(i, j));
        decoder.push(stream.subarray(j));
        assert.deepEqual(plain(frames), expected, `split at ${i}, ${j}`);
      }
    }
  });

  test('byte at a time: same frames, and the buffered state follows the frame layout', () => {
    const { decoder, frames } = collector();
    const states: string[] = [];
    for (let i = 0; i < stream.length; i++) {
      decoder.push(stream.subarray(i, i + 1));
      states.push(`${decoder.idle ? 'idle' : 'partial'}:${decoder.bufferedBytes}`);
    }
    assert.deepEqual(plain(frames), expected);
    // First frame: header bytes 1..8 buffered, 9th completes the header (payload starts), then
    // payload bytes count up; the last byte of the frame makes the decoder idle again.
    const firstLength = sample[0]!.payload.length;
    const first = states.slice(0, FRAME_HEADER_SIZE + firstLength);
    assert.deepEqual(first.slice(0, 8), [1, 2, 3, 4, 5, 6, 7, 8].map((n) => `partial:${n}`));
    assert.equal(first[8], 'partial:0');
    assert.equal(first[9], 'partial:1');
    assert.equal(first.at(-1), 'idle:0');
    // Second frame (CLOSE, empty payload) is delivered by its 9th header byte.
    const second = states.slice(FRAME_HEADER_SIZE + firstLength, 2 * FRAME_HEADER_SIZE + firstLength);
    assert.deepEqual(second, [...[1, 2, 3, 4, 5, 6, 7, 8].map((n) => `partial:${n}`), 'idle:0']);
    assert.equal(frames.length, sample.length);
  });

  test('frames are delivered as soon as they are complete, not at the next push', () => {
    const { decoder, frames } = collector();
    const one = encodeFrame(FrameType.STDOUT, 1, Buffer.from('abc'));
    decoder.push(one.subarray(0, one.length - 1));
    assert.equal(frames.length, 0);
    decoder.push(one.subarray(one.length - 1));
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.payload.toString(), 'abc');
  });

  test('an empty chunk changes nothing', () => {
    const { decoder, frames } = collector();
    decoder.push(Buffer.alloc(0));
    decoder.push(stream.subarray(0, 4));
    decoder.push(Buffer.alloc(0));
    decoder.push(stream.subarray(4));
    assert.deepEqual(plain(frames), expected);
  });

  test('accepts every known frame type and refuses every other byte value', () => {
    for (let type = 0; type <= 0xff; type++) {
      const { decoder, frames } = collector();
      const header = encodeFrameHeader(type as FrameType, 1, 0);
      if (ALL_TYPES.includes(type as FrameType)) {
        decoder.push(header);
        assert.equal(frames.length, 1, frameTypeName(type));
        assert.equal(frames[0]!.type, type);
      } else {
        assert.throws(() => decoder.push(header), (err: unknown) => err instanceof ProtocolError && err.code === ErrorCode.UNKNOWN_FRAME_TYPE, frameTypeName(type));
        assert.equal(frames.length, 0);
      }
    }
  });

  test('an oversized length prefix fails with SW_ERR_FRAME_TOO_LARGE before any allocation', () => {
    const maxPayload = 64 * 1024;
    for (const length of [maxPayload + 1, PROTOCOL_MAX_PAYLOAD + 1, 0xffffffff]) {
      for (const split of [FRAME_HEADER_SIZE, 4, 1]) {
        const { decoder, frames } = collector({ maxPayload });
        const header = encodeFrameHeader(FrameType.STDOUT, 1, length);
        // Only the header is sent: the error must come from it alone, not from waiting for data.
        const { error, sizes } = recordAllocations(() => {
          decoder.push(header.subarray(0, split));
          decoder.push(header.subarray(split));
        });
        assert.ok(error instanceof ProtocolError, `length ${length}, split ${split}`);
        assert.equal(error.code, ErrorCode.FRAME_TOO_LARGE);
        assert.match(error.message, new RegExp(String(length)));
        assert.deepEqual(sizes, [], 'no payload buffer was allocated');
        assert.equal(frames.length, 0);
      }
    }
  });

  test('a length of exactly maxPayload is accepted', () => {
    const maxPayload = 1000;
    const { decoder, frames } = collector({ maxPayload });
    decoder.push(encodeFrame(FrameType.STDOUT, 9, Buffer.alloc(maxPayload, 7)));
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.payload.length, maxPayload);
  });

  test('maxPayload defaults to, and is capped at, the protocol maximum', () => {
    assert.equal(new FrameDecoder(() => {}).maxPayload, PROTOCOL_MAX_PAYLOAD);
    assert.equal(new FrameDecoder(() => {}, { maxPayload: 2 ** 32 }).maxPayload, PROTOCOL_MAX_PAYLOAD);
    const decoder = new FrameDecoder(() => {}, { maxPayload: PREAUTH_MAX_PAYLOAD });
    assert.throws(() => decoder.push(encodeFrameHeader(FrameType.HELLO, 0, PREAUTH_MAX_PAYLOAD + 1)), { code: ErrorCode.FRAME_TOO_LARGE });
    const raised = new FrameDecoder(() => {}, { maxPayload: PREAUTH_MAX_PAYLOAD });
    raised.maxPayload = 10 * PROTOCOL_MAX_PAYLOAD;
    assert.equal(raised.maxPayload, PROTOCOL_MAX_PAYLOAD);
    raised.push(encodeFrameHeader(FrameType.STDOUT, 1, PREAUTH_MAX_PAYLOAD + 1)); // accepted after raising
    assert.throws(() => new FrameDecoder(() => {}).push(encodeFrameHeader(FrameType.STDOUT, 1, PROTOCOL_MAX_PAYLOAD + 1)), { code: ErrorCode.FRAME_TOO_LARGE });
  });

  test('frames before a bad header in the same chunk are still delivered', () => {
    const { decoder, frames } = collector();
    const good = encodeFrame(FrameType.STDOUT, 1, Buffer.from('first'));
    const bad = Buffer.from([0, 0, 0, 0, 0xee, 0, 0, 0, 1]);
    assert.throws(() => decoder.push(Buffer.concat([good, bad])), { code: ErrorCode.UNKNOWN_FRAME_TYPE });
    assert.deepEqual(frames.map((f) => f.payload.toString()), ['first']);
  });

  test('after an error the decoder stays failed with the same error', () => {
    const { decoder, frames } = collector({ maxPayload: 16 });
    let first: unknown;
    try {
      decoder.push(encodeFrameHeader(FrameType.STDOUT, 1, 17));
    } catch (err) {
      first = err;
    }
    assert.ok(first instanceof ProtocolError);
    for (const chunk of [encodeFrame(FrameType.CLOSE, 1), Buffer.alloc(0), Buffer.from([1])]) {
      assert.throws(() => decoder.push(chunk), (err: unknown) => err === first);
    }
    assert.equal(frames.length, 0);
  });

  test('a frame contained in one chunk is passed without a copy; a spanning one is assembled', () => {
    const seen: Buffer[] = [];
    const decoder = new FrameDecoder((f) => seen.push(f.payload));
    const whole = encodeFrame(FrameType.STDOUT, 1, Buffer.from('view'));
    decoder.push(whole);
    const split = encodeFrame(FrameType.STDOUT, 1, Buffer.from('copy'));
    decoder.push(split.subarray(0, 11));
    decoder.push(split.subarray(11));
    // Overwrite the caller's chunks: the view sees it, the assembled payload does not.
    whole.fill(0x2a, FRAME_HEADER_SIZE);
    split.fill(0x2a, FRAME_HEADER_SIZE);
    assert.equal(seen[0]!.toString(), '****');
    assert.equal(seen[1]!.toString(), 'copy');
  });
});

describe('FrameDecoder properties', () => {
  test('decode(chunks(encode(frames))) == frames for any frames and any chunking', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 6 }),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 90_000 })), { minLength: 1, maxLength: 12 }),
        (input, sizes) => {
          const bytes = Buffer.concat(input.map((f) => encodeFrame(f.type, f.channel, f.payload)));
          const { decoder, frames } = collector();
          for (const chunk of cut(bytes, sizes)) decoder.push(chunk);
          assert.equal(frames.length, input.length);
          for (let i = 0; i < input.length; i++) {
            assert.equal(frames[i]!.type, input[i]!.type);
            assert.equal(frames[i]!.channel, input[i]!.channel);
            assert.ok(frames[i]!.payload.equals(input[i]!.payload), `payload of frame ${i}`);
          }
          assert.equal(decoder.idle, true);
          assert.equal(decoder.bufferedBytes, 0);
        },
      ),
      { numRuns: 150 },
    );
  });

  test('with streamTypes: data frames may arrive in pieces (views, no copy), control frames whole, bytes identical', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 6 }),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 90_000 })), { minLength: 1, maxLength: 12 }),
        (input, sizes) => {
          const bytes = Buffer.concat(input.map((f) => encodeFrame(f.type, f.channel, f.payload)));
          const pieces: Frame[] = [];
          const decoder = new FrameDecoder((frame) => pieces.push({ ...frame, payload: Buffer.from(frame.payload) }), { streamTypes: STREAM_FRAME_TYPES });
          for (const chunk of cut(bytes, sizes)) decoder.push(chunk);
          // Re-join consecutive pieces of data frames; every other frame must arrive whole.
          let at = 0;
          for (const expected of input) {
            if (!STREAM_FRAME_TYPES.has(expected.type)) {
              const got = pieces[at++]!;
              assert.equal(got.type, expected.type);
              assert.ok(got.payload.equals(expected.payload));
              continue;
            }
            const parts: Buffer[] = [];
            let length = 0;
            do {
              const got = pieces[at++]!;
              assert.equal(got.type, expected.type);
              assert.equal(got.channel, expected.channel);
              parts.push(got.payload);
              length += got.payload.length;
            } while (length < expected.payload.length);
            assert.ok(Buffer.concat(parts).equals(expected.payload), 'data bytes identical');
          }
          assert.equal(at, pieces.length, 'no extra pieces');
          assert.equal(decoder.idle, true);
        },
      ),
      { numRuns: 150 },
    );
  });

  // Garbage that looks like frames often enough to reach every state: headers with random
  // (mostly known) types and lengths around the limit, followed by random amounts of bytes.
  const maxPayload = 64 * 1024;
  const segmentArb = fc.oneof(
    fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
    fc
      .record({
        type: fc.oneof(fc.constantFrom(...ALL_TYPES), fc.integer({ min: 0, max: 255 })),
        length: fc.oneof(
          fc.integer({ min: 0, max: 64 }),
          fc.integer({ min: maxPayload - 2, max: maxPayload + 2 }),
          fc.constantFrom(PROTOCOL_MAX_PAYLOAD, 0xffffffff),
          fc.maxSafeNat().map((n) => n % 2 ** 32),
        ),
        channel: u32,
        body: fc.integer({ min: 0, max: 70 * 1024 }),
        seed: fc.integer(),
      })
      .map(({ type, length, channel, body, seed }) => Buffer.concat([encodeFrameHeader(type as FrameType, channel, length), filled(body, seed)])),
  );

  test('random bytes in random chunks only ever yield frames or a coded ProtocolError, with bounded memory', () => {
    fc.assert(
      fc.property(
        fc.array(segmentArb, { minLength: 1, maxLength: 8 }),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 80_000 })), { minLength: 1, maxLength: 8 }),
        (segments, sizes) => {
          const frames: Frame[] = [];
          const decoder = new FrameDecoder((f) => frames.push(f), { maxPayload });
          let failure: unknown = null;
          for (const chunk of cut(Buffer.concat(segments), sizes)) {
            const { error, sizes: allocated } = recordAllocations(() => decoder.push(chunk));
            for (const size of allocated) assert.ok(size <= maxPayload, `allocated ${size} bytes`);
            assert.ok(decoder.bufferedBytes <= maxPayload + FRAME_HEADER_SIZE, `buffered ${decoder.bufferedBytes}`);
            if (failure !== null) {
              assert.equal(error, failure, 'a failed decoder keeps failing with the same error');
              continue;
            }
            if (error !== undefined) {
              assert.ok(error instanceof ProtocolError, `not a ProtocolError: ${String(error)}`);
              assert.ok(ERROR_CODES.has(error.code), `code ${error.code}`);
              assert.ok(error.code === ErrorCode.FRAME_TOO_LARGE || error.code === ErrorCode.UNKNOWN_FRAME_TYPE, error.code);
              failure = error;
            }
          }
          for (const f of frames) {
            assert.ok(ALL_TYPES.includes(f.type), `delivered unknown type ${f.type}`);
            assert.ok(f.payload.length <= maxPayload);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

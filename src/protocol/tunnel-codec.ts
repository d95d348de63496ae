/**
 * The NATS tunnel's messages (docs/nats.md, "The tunnel's wire format"): each NATS message
 * carries one, a byte stream cut into numbered DATA messages with credit ACKs, so a lost or
 * reordered message is noticed (never a corrupted stream) and what is in flight is bounded.
 * Pure: no I/O. src/transport/nats-tunnel.ts is the Duplex that uses it.
 */
import { ErrorCode, ProtocolError } from '../errors.js';

export const TunnelMessageType = { DATA: 1, ACK: 2, FIN: 3, RST: 4 } as const;
export type TunnelMessageType = (typeof TunnelMessageType)[keyof typeof TunnelMessageType];

/** The largest DATA body: one NATS message stays well under the server's default max_payload (1 MiB). */
export const TUNNEL_MAX_DATA = 64 * 1024;
/** Longest RST reason kept (bytes). */
export const TUNNEL_MAX_REASON = 1024;
const HEADER = 5;
const U32_MAX = 0xffffffff;

export type TunnelMessage =
  /** Bytes of the stream; `seq` counts DATA messages from 0 per direction. */
  | { type: typeof TunnelMessageType.DATA; seq: number; data: Uint8Array }
  /** Credit back: `bytes` consumed by the reader since the last ACK; `seq` counts ACKs from 0 per direction. */
  | { type: typeof TunnelMessageType.ACK; seq: number; bytes: number }
  /** Half close: no more DATA; `seq` is the next DATA seq (a lost tail is noticed). */
  | { type: typeof TunnelMessageType.FIN; seq: number }
  /** Abort, with a reason for the peer's error message. */
  | { type: typeof TunnelMessageType.RST; seq: number; reason: string };

function bad(what: string): ProtocolError {
  return new ProtocolError(ErrorCode.BAD_MESSAGE, `bad NATS tunnel message: ${what}`);
}

// u8 type | u32 BE seq | body (DATA: bytes; ACK: u32 BE bytes; FIN: empty; RST: UTF-8 reason)
export function encodeTunnelMessage(message: TunnelMessage): Uint8Array {
  if (!Number.isInteger(message.seq) || message.seq < 0 || message.seq > U32_MAX) throw new RangeError(`tunnel seq out of range: ${message.seq}`);
  let body: Uint8Array;
  switch (message.type) {
    case TunnelMessageType.DATA:
      if (message.data.length > TUNNEL_MAX_DATA) throw new RangeError(`tunnel DATA of ${message.data.length} bytes (at most ${TUNNEL_MAX_DATA})`);
      body = message.data;
      break;
    case TunnelMessageType.ACK: {
      if (!Number.isInteger(message.bytes) || message.bytes < 0 || message.bytes > U32_MAX) throw new RangeError(`tunnel ACK out of range: ${message.bytes}`);
      const b = Buffer.alloc(4);
      b.writeUInt32BE(message.bytes);
      body = b;
      break;
    }
    case TunnelMessageType.FIN:
      body = new Uint8Array(0);
      break;
    case TunnelMessageType.RST:
      body = Buffer.from(message.reason, 'utf8').subarray(0, TUNNEL_MAX_REASON);
      break;
  }
  const out = Buffer.allocUnsafe(HEADER + body.length);
  out[0] = message.type;
  out.writeUInt32BE(message.seq, 1);
  out.set(body, HEADER);
  return out;
}

/**
 * One NATS message's payload → a tunnel message. DATA's `data` is a view of `payload`.
 * @throws {ProtocolError} `SW_ERR_BAD_MESSAGE`: too short, unknown type, wrong body size.
 */
export function decodeTunnelMessage(payload: Uint8Array): TunnelMessage {
  if (payload.length < HEADER) throw bad(`${payload.length} bytes (at least ${HEADER})`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const type = payload[0];
  const seq = view.getUint32(1);
  const body = payload.subarray(HEADER);
  switch (type) {
    case TunnelMessageType.DATA:
      if (body.length > TUNNEL_MAX_DATA) throw bad(`DATA of ${body.length} bytes (at most ${TUNNEL_MAX_DATA})`);
      return { type, seq, data: body };
    case TunnelMessageType.ACK:
      if (body.length !== 4) throw bad(`ACK body of ${body.length} bytes (4 expected)`);
      return { type, seq, bytes: view.getUint32(HEADER) };
    case TunnelMessageType.FIN:
      if (body.length !== 0) throw bad(`FIN with a ${body.length}-byte body`);
      return { type, seq };
    case TunnelMessageType.RST:
      if (body.length > TUNNEL_MAX_REASON) throw bad(`RST reason of ${body.length} bytes`);
      return { type, seq, reason: Buffer.from(body).toString('utf8') };
    default:
      throw bad(`unknown type ${type}`);
  }
}

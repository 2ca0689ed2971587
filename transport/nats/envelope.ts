import { z } from 'zod';
import type { AnyEnvelope } from '../../store/schemas.js';

/**
 * The envelope on the wire: the one of DESIGN §4 as JSON, unchanged. When an event is too large
 * for the server's max_payload it goes out as a stub, `data: null` with `dataOmitted` saying how
 * large it was; readers take the full event from SQLite (`loom tail`, the HTTP API).
 */
export const WireEnvelope = z.object({
  sessionId: z.string().nullable(),
  seq: z.number().int().positive(),
  gseq: z.number().int().positive(),
  type: z.string().min(1),
  version: z.number().int().positive(),
  at: z.string(),
  data: z.unknown(),
  dataOmitted: z.object({ bytes: z.number().int(), reason: z.string() }).optional(),
});
export type WireEnvelope = z.infer<typeof WireEnvelope>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The payload of one event, at most `maxBytes` (a stub with `dataOmitted` when the event is larger). */
export function encodeEnvelope(event: AnyEnvelope, maxBytes: number): Uint8Array {
  const full = encoder.encode(JSON.stringify(event));
  if (full.byteLength <= maxBytes) return full;
  const stub: WireEnvelope = {
    sessionId: event.sessionId,
    seq: event.seq,
    gseq: event.gseq,
    type: event.type,
    version: event.version,
    at: event.at,
    data: null,
    dataOmitted: { bytes: full.byteLength, reason: `larger than the NATS payload limit of ${maxBytes} bytes; read it from the Loom store` },
  };
  return encoder.encode(JSON.stringify(stub));
}

/**
 * Parses a message payload into an envelope, or null when it is not one (a foreign publisher on
 * our subjects). The data is not checked against its type's schema: it was validated when it was
 * written, and a subscriber may run an older or newer Loom than the publisher.
 */
export function decodeEnvelope(payload: Uint8Array): AnyEnvelope | null {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(payload));
  } catch {
    return null;
  }
  const parsed = WireEnvelope.safeParse(json);
  return parsed.success ? (parsed.data as unknown as AnyEnvelope) : null;
}

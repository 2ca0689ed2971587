/**
 * The public NATS names of Loom (DESIGN §6). Subscribers outside Loom rely on these: changing one
 * is a breaking change for them.
 *
 * - `loom.session.<id>.wake`, `loom.session.<id>.cancel`: core NATS signals (empty payload).
 * - `loom.session.<id>.event.<type>`: session events; a dotted type becomes several tokens, so
 *   `loom.session.*.event.tool.>` selects every tool event of every session.
 * - `loom.system.event.<type>`: system events (sessionId null).
 * - Both event families are stored in the JetStream stream `LOOM_EVENTS`, each message with the
 *   JSON envelope `{ sessionId, seq, gseq, type, version, at, data }` and `Nats-Msg-Id` = gseq.
 */
import type { EventFilter } from '../types.js';

/** The JetStream stream holding every published event. */
export const EVENTS_STREAM = 'LOOM_EVENTS';
export const SESSION_EVENTS_WILDCARD = 'loom.session.*.event.>';
export const SYSTEM_EVENTS_WILDCARD = 'loom.system.event.>';
export const EVENTS_STREAM_SUBJECTS = [SESSION_EVENTS_WILDCARD, SYSTEM_EVENTS_WILDCARD];

/** Every wake / cancel signal. */
export const WAKE_WILDCARD = 'loom.session.*.wake';
export const CANCEL_WILDCARD = 'loom.session.*.cancel';

/**
 * Core subject on which a process that committed events asks the outbox publisher (which may be
 * another process holding the outbox lease) to publish now instead of at its next poll.
 */
export const OUTBOX_NUDGE_SUBJECT = 'loom.outbox.nudge';

/** The KV bucket mirroring session owners. */
export const OWNERS_BUCKET = 'loom_owners';

/** Header naming the database an event came from (the outbox row's db id). */
export const DB_HEADER = 'Loom-Db';

const TOKEN_SAFE = /^[A-Za-z0-9_-]+$/;

/**
 * A session id as one subject token. Ids Loom makes (`ses_…`) are used as they are; anything else
 * (a subagent session named after a provider's call id may hold any character) is encoded:
 * every byte outside `[A-Za-z0-9_-]` becomes `~` and two hex digits, so the encoding is reversible
 * and never contains `.`, `*`, `>` or whitespace.
 */
export function sessionToken(sessionId: string): string {
  if (TOKEN_SAFE.test(sessionId)) return sessionId;
  let out = '';
  for (const byte of Buffer.from(sessionId, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `~${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The inverse of `sessionToken`. */
export function sessionIdFromToken(token: string): string {
  if (!token.includes('~')) return token;
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === '~') {
      bytes.push(parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(token.charCodeAt(i));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Event types are dotted lowercase words; each word becomes a token. Asserted (a broken invariant). */
function typeTokens(type: string): string {
  if (!/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/.test(type)) throw new Error(`event type "${type}" cannot be a NATS subject suffix`);
  return type;
}

export function sessionEventSubject(sessionId: string, type: string): string {
  return `loom.session.${sessionToken(sessionId)}.event.${typeTokens(type)}`;
}

export function systemEventSubject(type: string): string {
  return `loom.system.event.${typeTokens(type)}`;
}

/** Subject of an envelope: session events and system events (sessionId null). */
export function eventSubject(event: { sessionId: string | null; type: string }): string {
  return event.sessionId === null ? systemEventSubject(event.type) : sessionEventSubject(event.sessionId, event.type);
}

export function signalSubject(sessionId: string, kind: 'wake' | 'cancel'): string {
  return `loom.session.${sessionToken(sessionId)}.${kind}`;
}

/** The session id and kind of a signal subject, or null when it is not one. */
export function parseSignalSubject(subject: string): { sessionId: string; kind: 'wake' | 'cancel' } | null {
  const m = /^loom\.session\.([^.]+)\.(wake|cancel)$/.exec(subject);
  return m ? { sessionId: sessionIdFromToken(m[1]!), kind: m[2] as 'wake' | 'cancel' } : null;
}

/**
 * The narrowest single subject covering a filter (nats-server 2.9 takes one filter subject per
 * consumer); the exact filter is applied again to each decoded envelope. Undefined means the
 * whole stream (every session and system event).
 */
export function filterSubject(filter: EventFilter): string | undefined {
  // Without a session the filter spans sessions and the system log: two subjects, so the whole stream.
  if (filter.sessionId === undefined) return undefined;
  const types = filter.types ?? [];
  const one = types.length === 1 ? types[0]! : undefined;
  const suffix = one === undefined ? '>' : one.endsWith('.') ? `${one.slice(0, -1)}.>` : one;
  return `loom.session.${sessionToken(filter.sessionId)}.event.${suffix}`;
}

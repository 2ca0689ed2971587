import { DELTA_BATCH_BYTES_MAX, DELTA_BUFFERED_PARTS_MAX } from '../core/limits.js';

/** One incoming provider chunk's text for a text or reasoning part. */
export interface Delta {
  sessionId: string;
  epoch: number;
  type: 'text.delta' | 'reasoning.delta';
  activityId: string;
  attemptId: string;
  partId: string;
  delta: string;
}

/** A run of consecutive deltas to one part, merged into the single event it will become. */
export interface Segment {
  type: Delta['type'];
  epoch: number;
  activityId: string;
  attemptId: string;
  partId: string;
  text: string;
}

interface SessionBuffer {
  segments: Segment[];
  bytes: number;
}

/**
 * Buffers deltas per session, merging consecutive deltas to the same part, so order across parts
 * is kept exactly. Size trigger: a session whose buffered bytes reach DELTA_BATCH_BYTES_MAX is
 * due at once; overflow strategy: past DELTA_BUFFERED_PARTS_MAX segments everything is due.
 * The store drains a session before any other event of that session, in the same transaction.
 */
export class DeltaBuffer {
  private readonly sessions = new Map<string, SessionBuffer>();
  private segmentCount = 0;

  get size(): number {
    return this.segmentCount;
  }

  /** Adds a delta; returns 'flush-session' or 'flush-all' when a bound is reached. */
  add(d: Delta): 'ok' | 'flush-session' | 'flush-all' {
    let buf = this.sessions.get(d.sessionId);
    if (!buf) {
      buf = { segments: [], bytes: 0 };
      this.sessions.set(d.sessionId, buf);
    }
    const last = buf.segments[buf.segments.length - 1];
    if (last && last.partId === d.partId && last.type === d.type && last.epoch === d.epoch) {
      last.text += d.delta;
    } else {
      buf.segments.push({ type: d.type, epoch: d.epoch, activityId: d.activityId, attemptId: d.attemptId, partId: d.partId, text: d.delta });
      this.segmentCount++;
    }
    buf.bytes += d.delta.length;
    if (this.segmentCount >= DELTA_BUFFERED_PARTS_MAX) return 'flush-all';
    if (buf.bytes >= DELTA_BATCH_BYTES_MAX) return 'flush-session';
    return 'ok';
  }

  has(sessionId: string): boolean {
    return this.sessions.has(sessionId);
  }

  sessionIds(): string[] {
    return [...this.sessions.keys()];
  }

  /** Removes and returns a session's segments, in arrival order. */
  take(sessionId: string): Segment[] {
    const buf = this.sessions.get(sessionId);
    if (!buf) return [];
    this.sessions.delete(sessionId);
    this.segmentCount -= buf.segments.length;
    return buf.segments;
  }

  /** Puts segments back at the front (a flush transaction failed and will be retried). */
  restore(sessionId: string, segments: Segment[]): void {
    const buf = this.sessions.get(sessionId);
    if (!buf) {
      this.sessions.set(sessionId, { segments, bytes: segments.reduce((n, s) => n + s.text.length, 0) });
    } else {
      buf.segments.unshift(...segments);
      buf.bytes += segments.reduce((n, s) => n + s.text.length, 0);
    }
    this.segmentCount += segments.length;
  }
}

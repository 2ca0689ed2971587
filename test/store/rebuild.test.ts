import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createSequentialIds } from '../../core/ids.js';
import { PROJECTION_TABLES, type AppendRequest } from '../../store/index.js';
import { tempStore } from '../helpers.js';

/**
 * Random operations over a few sessions. Many are illegal at the moment they run (an input that
 * is not pending, a tool call that does not exist): those must throw and write nothing, which is
 * part of what is being checked: the live projections only ever reflect committed events.
 */
const op = fc.oneof(
  fc.record({ k: fc.constant('admit' as const), s: fc.nat(2), mode: fc.constantFrom('steer' as const, 'queue' as const), client: fc.option(fc.nat(3)) }),
  fc.record({ k: fc.constantFrom('assign' as const, 'consume' as const, 'release' as const, 'cancel' as const), s: fc.nat(2), i: fc.nat(8) }),
  fc.record({ k: fc.constantFrom('open' as const, 'dispatch' as const, 'fail' as const, 'finish' as const, 'settle' as const, 'detect' as const), s: fc.nat(2) }),
  fc.record({ k: fc.constantFrom('delta' as const, 'done' as const), s: fc.nat(2), kind: fc.constantFrom('text' as const, 'reasoning' as const), text: fc.string({ maxLength: 6 }) }),
  fc.record({ k: fc.constantFrom('call' as const, 'start' as const, 'toolSettle' as const), s: fc.nat(2), c: fc.nat(3) }),
);

describe('store - rebuild', () => {
  it('rebuild - projections rebuilt from the log equal the live ones (property)', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const store = tempStore({ ids: createSequentialIds() });
        const sessions = ['ses_0', 'ses_1', 'ses_2'];
        const epochs = new Map<string, number>();
        for (const sid of sessions) {
          store.append({ sessionId: sid, type: 'session.created', data: { location: `/p/${sid}`, model: 'openai/m' } });
          epochs.set(sid, store.owners.acquire(sid, 'owner', 60_000, Date.now())!.epoch);
        }
        const counters = { act: 0, att: 0 };
        const current = new Map<string, { act: string; att: string }>();
        for (const o of ops) {
          const sid = sessions[o.s]!;
          const epoch = epochs.get(sid)!;
          const cur = current.get(sid) ?? { act: 'act_none', att: 'att_none' };
          const inputId = 'i' in o ? `in_${String(o.i + 1).padStart(6, '0')}` : '';
          const owner = (r: Omit<AppendRequest, 'sessionId' | 'epoch'>) => ({ ...r, sessionId: sid, epoch }) as AppendRequest;
          try {
            switch (o.k) {
              case 'admit':
                store.admitInput(sid, { mode: o.mode, text: `t${o.s}`, clientId: o.client === null ? undefined : `c${o.client}` });
                break;
              case 'assign':
                store.append(owner({ type: 'input.assigned', data: { inputId, activityId: cur.act } }));
                break;
              case 'consume':
                store.append(owner({ type: 'input.consumed', data: { inputId, activityId: cur.act, attemptId: cur.att } }));
                break;
              case 'release':
                store.append(owner({ type: 'input.released', data: { inputId, activityId: cur.act, reason: 'r' } }));
                break;
              case 'cancel':
                store.append({ sessionId: sid, type: 'input.cancelled', data: { inputId } });
                break;
              case 'open': {
                const act = `act_${++counters.act}`;
                current.set(sid, { act, att: cur.att });
                store.append(owner({ type: 'activity.opened', data: { activityId: act, trigger: 'run', inputIds: [], turnLimit: 25 } }));
                break;
              }
              case 'dispatch': {
                const att = `att_${++counters.att}`;
                current.set(sid, { act: cur.act, att });
                store.append(owner({ type: 'attempt.dispatched', data: { activityId: cur.act, turnId: 'turn', attemptId: att, attempt: 1, model: 'm', inputIds: [] } }));
                break;
              }
              case 'fail':
                store.append(owner({ type: 'attempt.failed', data: { activityId: cur.act, attemptId: cur.att, error: { kind: 'x', message: 'm' }, retryable: true, receivedChunks: true, discardedParts: [] } }));
                break;
              case 'finish':
                store.append(owner({ type: 'turn.finished', data: { activityId: cur.act, turnId: 'turn', attemptId: cur.att, finishReason: 'stop', usage: { inputTokens: 3, outputTokens: 4 }, toolCalls: 0, ...(o.s === 1 ? { costUsd: 0.001 } : {}) } }));
                break;
              case 'settle':
                store.append(owner({ type: 'activity.settled', data: { activityId: cur.act, status: 'completed', turns: 1 } }));
                break;
              case 'detect':
                store.append(owner({ type: 'recovery.detected', data: { activityId: cur.act, reason: 'r', restarts: 1 } }));
                break;
              case 'delta':
                store.bufferDelta({ sessionId: sid, epoch, type: `${o.kind}.delta`, activityId: cur.act, attemptId: cur.att, partId: `${cur.att}_${o.kind}`, delta: o.text });
                break;
              case 'done':
                store.append(owner({ type: `${o.kind}.done`, data: { activityId: cur.act, attemptId: cur.att, partId: `${cur.att}_${o.kind}`, text: o.text } }));
                break;
              case 'call':
                store.append(owner({ type: 'tool.called', data: { activityId: cur.act, attemptId: cur.att, callId: `${cur.att}_c${o.c}`, providerCallId: 'p', tool: 'read', input: '{}' } }));
                break;
              case 'start':
                store.append(owner({ type: 'tool.started', data: { callId: `${cur.att}_c${o.c}` } }));
                break;
              case 'toolSettle':
                store.append(owner({ type: 'tool.settled', data: { callId: `${cur.att}_c${o.c}`, status: 'ok', output: 'out' } }));
                break;
            }
          } catch {
            // refused: wrote nothing
          }
        }
        store.flushDeltas();
        const live = store.queries.dumpProjections(PROJECTION_TABLES);
        store.rebuildProjections();
        expect(store.queries.dumpProjections(PROJECTION_TABLES)).toEqual(live);
        store.close();
      }),
      { numRuns: 60 },
    );
  });
});

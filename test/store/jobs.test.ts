import { describe, expect, it } from 'vitest';
import { IllegalJobTransitionError } from '../../store/projections.js';
import { InvalidEventError, PROJECTION_TABLES, type AppendRequest } from '../../store/index.js';
import { tempStore } from '../helpers.js';

function setup() {
  const store = tempStore();
  const sid = store.ids.next('ses');
  store.append({ sessionId: sid, type: 'session.created', data: { location: '/p', model: 'openai/m' } });
  const { epoch } = store.owners.acquire(sid, 'owner', 60_000, Date.now())!;
  const o = (type: string, data: object) => ({ sessionId: sid, type, data, epoch }) as AppendRequest;
  const started = (jobId: string) =>
    o('job.started', { jobId, kind: 'bash', summary: 'make', pid: 10, pgid: 10, processStartTime: 5, outputPath: `/h/jobs/${jobId}.out`, timeoutMs: 1_000, startedAt: '2025-01-01T00:00:00.000Z' });
  return { store, sid, o, started };
}

describe('store - jobs projection', () => {
  it('jobs projection - follows a job from started through output to settled', () => {
    const { store, sid, o, started } = setup();
    store.append([started('job_1'), o('job.output', { jobId: 'job_1', offset: 0, chunk: 'héllo\n' }), o('job.output', { jobId: 'job_1', offset: 100, chunk: 'tail', skippedBytes: 93 })]);
    expect(store.queries.job('job_1')).toMatchObject({ sessionId: sid, status: 'running', pid: 10, pgid: 10, processStartTime: 5, outputOffset: 104, outputReported: 11, cancelRequested: false });
    store.append({ sessionId: sid, type: 'cancel.requested', data: { jobId: 'job_1' } });
    expect(store.queries.job('job_1')!.cancelRequested).toBe(true);
    store.append(o('job.settled', { jobId: 'job_1', status: 'cancelled', signal: 'SIGTERM', outputTail: 'tail', outputBytes: 104, reason: 'cancel requested' }));
    expect(store.queries.job('job_1')).toMatchObject({ status: 'cancelled', signal: 'SIGTERM', exitCode: null, outputTail: 'tail', outputBytes: 104 });
    expect(store.queries.runningJobCount(sid)).toBe(0);
    expect(store.queries.jobs(sid, { limit: 10 }).map((j) => j.jobId)).toEqual(['job_1']);
    expect(store.queries.resolveJobId('job_')).toBe('job_1');
  });

  it('jobs projection - a job settles once: a second job.settled is refused and nothing is written', () => {
    const { store, sid, o, started } = setup();
    store.append([started('job_1'), o('job.settled', { jobId: 'job_1', status: 'ok', exitCode: 0, outputTail: '', outputBytes: 0 })]);
    const last = store.queries.session(sid)!.lastSeq;
    expect(() => store.append(o('job.settled', { jobId: 'job_1', status: 'failed', outputTail: '', outputBytes: 0 }))).toThrow(IllegalJobTransitionError);
    expect(() => store.append(o('job.output', { jobId: 'job_1', offset: 0, chunk: 'late' }))).toThrow(IllegalJobTransitionError);
    expect(() => store.append(o('job.output', { jobId: 'job_unknown', offset: 0, chunk: 'x' }))).toThrow(/unknown job/);
    expect(store.queries.session(sid)!.lastSeq).toBe(last);
    expect(store.queries.job('job_1')!.status).toBe('ok');
  });

  it('jobs projection - a cancel naming a settled job no longer matches and is ignored', () => {
    const { store, sid, o, started } = setup();
    store.append([started('job_1'), o('job.settled', { jobId: 'job_1', status: 'ok', exitCode: 0, outputTail: '', outputBytes: 0 })]);
    store.append({ sessionId: sid, type: 'cancel.requested', data: { jobId: 'job_1' } });
    expect(store.queries.job('job_1')).toMatchObject({ status: 'ok', cancelRequested: false });
  });

  it('job events - are owner events with validated data', () => {
    const { store, sid, started } = setup();
    expect(() => store.append({ ...started('job_1'), epoch: undefined } as AppendRequest)).toThrow(InvalidEventError);
    expect(() => store.append({ sessionId: sid, type: 'job.settled', data: { jobId: 'job_1', status: 'exploded', outputTail: '', outputBytes: 0 }, epoch: 1 } as unknown as AppendRequest)).toThrow(/job.settled.*status/);
  });

  it('jobs projection - a rebuild from the log equals the live rows', () => {
    const { store, o, started } = setup();
    store.append([started('job_1'), started('job_2'), o('job.output', { jobId: 'job_2', offset: 0, chunk: 'x' }), o('job.settled', { jobId: 'job_1', status: 'lost', outputTail: '', outputBytes: 0, reason: 'gone' })]);
    expect(PROJECTION_TABLES).toContain('jobs');
    const live = store.queries.dumpProjections(['jobs']);
    store.rebuildProjections();
    expect(store.queries.dumpProjections(['jobs'])).toEqual(live);
  });
});

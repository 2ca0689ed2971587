import { it } from 'vitest';
import { createActor, fromPromise } from 'xstate';
import { sessionMachine } from '../../machines/session.machine.js';
import { toolCallMachine } from '../../machines/toolCall.machine.js';

const input = { sessionId: 's1', turnLimit: 2, toolCallsPerTurn: 2, toolConcurrency: 1, attemptRetriesMax: 1, attemptBackoffMs: 10, attemptBackoffMaxMs: 100, toolTimeoutsMs: {}, toolTimeoutDefaultMs: 1000 };
const env = (type: string, data: any) => ({ sessionId: 's1', seq: 0, gseq: 0, type, version: 1, at: '', data }) as any;
it('scratch', async () => {
  const m = sessionMachine.provide({ actors: { providerTurn: fromPromise(async () => { await new Promise(() => {}); }), toolCall: toolCallMachine.provide({ actors: { executeTool: fromPromise(async () => ({ status: 'ok' as const, output: 'x' })) } }) } });
  const actor = createActor(m, { input });
  actor.start();
  actor.send(env('run.requested', { runId: 'r' }));
  actor.send(env('activity.opened', { activityId: 'a1', trigger: 'run', inputIds: [], turnLimit: 2 }));
  actor.send(env('turn.started', { activityId: 'a1', turnId: 't1', turn: 1 }));
  actor.send(env('attempt.dispatched', { activityId: 'a1', turnId: 't1', attemptId: 'x1', attempt: 1, model: 'm', inputIds: [] }));
  actor.send(env('tool.called', { activityId: 'a1', attemptId: 'x1', callId: 'c1', providerCallId: 'p', tool: 'read', input: '{}' }));
  await new Promise((r) => setTimeout(r, 50));
  console.log(Object.keys(actor.getSnapshot().children), (actor.getSnapshot().children as any).c1?.getSnapshot().status);
});

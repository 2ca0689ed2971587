/**
 * A standalone NATS subscriber for Loom (issue 6): it uses only Loom's public NATS names — the
 * JetStream stream `LOOM_EVENTS` and the subjects `loom.session.<id>.event.<type>` — and the
 * JSON envelope `{ sessionId, seq, gseq, type, version, at, data }`. It imports nothing from Loom.
 *
 *   node dist/examples/nats-subscriber.js [--nats URL] [--from-start] [--json]
 *   npm run example:subscriber -- --nats nats://127.0.0.1:4222
 *
 * By default it prints every tool call of every session and every activity that settles
 * `failed`. `--json` prints every session event instead, one envelope per line (NDJSON).
 * `--from-start` replays the stream from its first message; otherwise it starts with new events.
 *
 * It reads through an ordered consumer: events arrive once each, in the order Loom committed them
 * (the stream's order is gseq order), and after a NATS restart it resumes where it stopped.
 */
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

interface Envelope {
  sessionId: string | null;
  seq: number;
  gseq: number;
  type: string;
  version: number;
  at: string;
  data: Record<string, unknown> | null;
}

function parseArgs(argv: string[]): { url: string; fromStart: boolean; json: boolean } {
  let url = process.env.LOOM_NATS_URL ?? 'nats://127.0.0.1:4222';
  let fromStart = false;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--nats' && argv[i + 1]) url = argv[++i]!;
    else if (a === '--from-start') fromStart = true;
    else if (a === '--json') json = true;
    else {
      process.stderr.write('usage: nats-subscriber [--nats URL] [--from-start] [--json]\n');
      process.exit(2);
    }
  }
  return { url, fromStart, json };
}

function describe(e: Envelope): string | null {
  const d = e.data ?? {};
  if (e.type === 'tool.called') return `${e.at} ${e.sessionId} tool ${String(d.tool)} ${String(d.input).slice(0, 200)}`;
  if (e.type === 'activity.settled' && d.status === 'failed') return `${e.at} ${e.sessionId} activity ${String(d.activityId)} FAILED${d.reason ? `: ${String(d.reason)}` : ''}`;
  return null;
}

async function main(): Promise<void> {
  const { url, fromStart, json } = parseArgs(process.argv.slice(2));
  const nc = await connect({ servers: url, name: 'loom example subscriber', maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  process.stderr.write(`subscribed to loom.session.*.event.> on ${url}\n`);
  const stop = () => void nc.drain();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const js = jetstream(nc);
  // Every event of every session; `loom.session.*.event.tool.>` would select only tool events.
  // Loom creates the stream when it first publishes: until then, look again every second.
  // A stream that did not exist when we started holds only events we have not seen: read it all.
  let consumer;
  let all = fromStart;
  for (let said = false; ; said = true) {
    try {
      consumer = await js.consumers.get('LOOM_EVENTS', {
        filter_subjects: 'loom.session.*.event.>',
        deliver_policy: all ? DeliverPolicy.All : DeliverPolicy.New,
      });
      break;
    } catch (error) {
      if (nc.isClosed()) return;
      if (!said) process.stderr.write(`waiting for the LOOM_EVENTS stream (${(error as Error).message})\n`);
      all = true;
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
  // Pull requests expire after 2 s (heartbeats every 1 s), so after a server restart the consumer
  // notices within seconds that it is gone and is made again from the last event it delivered.
  const messages = await consumer.consume({ expires: 2_000 });
  for await (const m of messages) {
    const e = m.json<Envelope>();
    if (json) process.stdout.write(`${JSON.stringify(e)}\n`);
    else {
      const line = describe(e);
      if (line) process.stdout.write(`${line}\n`);
    }
  }
  await nc.closed();
}

main().catch((error) => {
  process.stderr.write(`nats-subscriber: ${(error as Error)?.message ?? error}\n`);
  process.exit(1);
});

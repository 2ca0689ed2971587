/**
 * The subscriber side of the `sse` benchmark, in its own process (so parsing 100 streams does not
 * compete with the server in one event loop): opens N streams with the SDK's event iterator and
 * reports, per phase, how many events each subscriber received, gaps and duplicates, reconnects,
 * and the lag of each event (receive time minus the append time carried in the event).
 *
 *   node dist/bench/sse-subscribers.js URL TOKEN PATH_SESSION N
 *
 * Events carry `data.reason` = "<phase> <epoch ms>" or "end <phase>". Prints `{"ready":true}` once
 * every stream delivered its first event, then one JSON line per phase when every subscriber saw
 * that phase's end marker.
 */
import { createLoomClient } from '../sdk/index.js';

const [url, token, sessionId, nArg] = process.argv.slice(2);
const n = Number(nArg);
const wallNow = () => performance.timeOrigin + performance.now();

interface PhaseStats {
  received: number;
  lags: number[];
  firstAt: number;
  lastAt: number;
  ended: number;
}
const phases = new Map<string, PhaseStats>();
const phase = (name: string): PhaseStats => {
  let p = phases.get(name);
  if (!p) phases.set(name, (p = { received: 0, lags: [], firstAt: Infinity, lastAt: 0, ended: 0 }));
  return p;
};
let ready = 0;
let gaps = 0;
let dupes = 0;
let reconnects = 0;

async function subscriber(): Promise<void> {
  const client = createLoomClient({ baseUrl: url!, token: token! });
  let last = 0;
  let first = true;
  for await (const e of client.events({ sessionId: sessionId!, onReconnect: () => reconnects++, reconnectsMax: 50 })) {
    if (e.seq !== last + 1) (e.seq <= last ? dupes++ : gaps++);
    last = e.seq;
    if (first) {
      first = false;
      if (++ready === n) process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
    }
    const reason = (e.data as { reason?: string } | undefined)?.reason;
    if (!reason) continue;
    const t = wallNow();
    const [a, b] = reason.split(' ');
    if (a === 'end') {
      const p = phase(b!);
      if (++p.ended === n) {
        const lags = p.lags.sort((x, y) => x - y);
        const q = (f: number) => lags[Math.min(lags.length - 1, Math.floor(f * lags.length))] ?? 0;
        process.stdout.write(`${JSON.stringify({ phase: b, received: p.received, seconds: (p.lastAt - p.firstAt) / 1000, p50: q(0.5), p99: q(0.99), max: lags[lags.length - 1] ?? 0, gaps, dupes, reconnects })}\n`);
      }
      if (b === 'burst' && p.ended === n) process.exit(0);
      continue;
    }
    const p = phase(a!);
    p.received++;
    p.lags.push(t - Number(b));
    if (t < p.firstAt) p.firstAt = t;
    if (t > p.lastAt) p.lastAt = t;
  }
}

for (let i = 0; i < n; i++) void subscriber().catch((error) => {
  process.stderr.write(`subscriber failed: ${(error as Error).message}\n`);
  process.exit(1);
});

import { natsUrlFromEnv } from '../../actors/nats.js';
import { createNatsTransport } from '../../transport/nats/index.js';
import { natsTail } from '../../transport/nats/tail.js';
import { UsageError } from '../exit.js';
import { formatEventLine } from '../render.js';
import { colorsFor } from '../style.js';
import { openStore } from '../runtime.js';
import { requireSession } from './session.js';

/** `loom tail`: prints a session's events after --after; --follow keeps going, from any process. */
export async function tailCommand(idArg: string, opts: { after: string; follow?: boolean; json?: boolean }): Promise<number> {
  const after = Number(opts.after);
  if (!Number.isInteger(after) || after < 0) throw new UsageError(`--after must be a non-negative integer, got "${opts.after}"`);
  const { store } = openStore();
  try {
    const sessionId = requireSession(store, idArg).sessionId;
    const colors = colorsFor(process.stdout);
    const print = (e: Parameters<typeof formatEventLine>[0]) => process.stdout.write(`${opts.json ? JSON.stringify(e) : formatEventLine(e, colors)}\n`);
    if (!opts.follow) {
      let cursor = after;
      for (let page = store.read(sessionId, { after: cursor }); page.length > 0; page = store.read(sessionId, { after: cursor })) {
        for (const e of page) print(e);
        cursor = page[page.length - 1]!.seq;
      }
      return 0;
    }
    const ac = new AbortController();
    process.once('SIGINT', () => ac.abort());
    process.once('SIGTERM', () => ac.abort());
    const natsUrl = natsUrlFromEnv();
    if (!natsUrl) {
      for await (const e of store.tail({ sessionId, after }, { signal: ac.signal })) print(e);
      return 0;
    }
    // With NATS, new events arrive through it at once; SQLite fills any gap and stays the fallback.
    const transport = createNatsTransport({ url: natsUrl, name: `loom tail ${process.pid}` });
    try {
      process.stderr.write(`following ${sessionId} through NATS at ${natsUrl} (SQLite polling as the fallback)\n`);
      for await (const e of natsTail(store, transport, { sessionId, after }, { signal: ac.signal })) print(e);
    } finally {
      await transport.close();
    }
    return 0;
  } finally {
    store.close();
  }
}

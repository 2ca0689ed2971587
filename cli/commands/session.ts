import { UsageError } from '../exit.js';
import { openStore } from '../runtime.js';
import type { SessionRow, Store } from '../../store/index.js';

export function requireSession(store: Store, idArg: string): SessionRow {
  const id = store.queries.resolveSessionId(idArg);
  if (!id) throw new UsageError(`no session matches "${idArg}" (see loom session ls)`);
  return store.queries.session(id)!;
}

/** `loom session ls`: opens (and migrates) the database in $LOOM_HOME and lists sessions. */
export async function sessionLs(opts: { json?: boolean }): Promise<number> {
  const { store } = openStore();
  try {
    const rows = store.queries.sessions();
    if (opts.json) {
      for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
      return 0;
    }
    if (rows.length === 0) {
      process.stdout.write('no sessions yet: start one with loom run "..."\n');
      return 0;
    }
    for (const r of rows) {
      const status = r.status === 'idle' ? `idle${r.lastActivityStatus ? ` (last: ${r.lastActivityStatus})` : ''}` : r.status;
      process.stdout.write(`${r.sessionId}  ${r.updatedAt}  ${r.model}  ${status}  ${r.location}${lineage(r)}\n`);
    }
    return 0;
  } finally {
    store.close();
  }
}

/** `loom session show`: the session row and its projected conversation. */
export async function sessionShow(idArg: string, opts: { json?: boolean }): Promise<number> {
  const { store } = openStore();
  try {
    const s = requireSession(store, idArg);
    const conversation = store.queries.conversation(s.sessionId);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ session: s, conversation })}\n`);
      return 0;
    }
    process.stdout.write(`${s.sessionId}  ${s.model}  ${s.location}${lineage(s)}\n`);
    for (const m of conversation) {
      if (m.role === 'user') process.stdout.write(`\nuser: ${m.text}\n${(m.attachments ?? []).map((a) => `  attached ${a.kind} ${a.name} (${a.bytes} bytes)\n`).join('')}`);
      else {
        const text = m.parts.filter((p) => p.kind === 'text').map((p) => p.text).join('');
        if (text) process.stdout.write(`\nassistant: ${text}\n`);
        for (const c of m.toolCalls) process.stdout.write(`  tool ${c.tool}(${c.input}) → ${c.status ?? c.state}\n`);
      }
    }
    return 0;
  } finally {
    store.close();
  }
}

/** Where a session came from: its parent (a `task` subagent's caller, or a fork's source) and title. */
function lineage(r: SessionRow): string {
  if (r.parentId === null) return r.title ? `  "${r.title}"` : '';
  return `  ← ${r.parentId}${r.title ? ` "${r.title}"` : ''}`;
}

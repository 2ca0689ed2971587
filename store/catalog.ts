import type { Statement } from 'better-sqlite3';
import type { Db } from './db.js';
import type { AnyEnvelope, EventData, EventType } from './schemas.js';
import type { AppendRequest, Store } from './store.js';

/** A model registered with `loom models add` or `POST /models`: the fields given, as given. */
export interface RegisteredModelRow {
  modelId: string;
  provider: string;
  /** The settings (name, capabilities, limits, cost) as JSON-compatible data; validated by the catalog. */
  patch: Record<string, unknown>;
  source: 'cli' | 'http';
  updatedAt: string;
}

/**
 * The `models` table: registrations every process loads into its catalog (layer `registered`).
 * Written by the command that registers, in the same transaction as the system event it causes.
 */
export class RegisteredModels {
  private readonly q: Record<'all' | 'get' | 'put' | 'del' | 'count', Statement>;

  constructor(db: Db) {
    this.q = {
      all: db.prepare('SELECT * FROM models ORDER BY model_id'),
      get: db.prepare('SELECT * FROM models WHERE model_id = ?'),
      put: db.prepare(`INSERT INTO models (model_id, provider, patch, source, updated_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (model_id) DO UPDATE SET provider = excluded.provider, patch = excluded.patch, source = excluded.source, updated_at = excluded.updated_at`),
      del: db.prepare('DELETE FROM models WHERE model_id = ?'),
      count: db.prepare('SELECT count(*) AS n FROM models'),
    };
  }

  list(): RegisteredModelRow[] {
    return (this.q.all.all() as DbRow[]).map(toRow);
  }

  get(modelId: string): RegisteredModelRow | undefined {
    const row = this.q.get.get(modelId) as DbRow | undefined;
    return row && toRow(row);
  }

  count(): number {
    return (this.q.count.get() as { n: number }).n;
  }

  put(row: RegisteredModelRow): void {
    this.q.put.run(row.modelId, row.provider, JSON.stringify(row.patch), row.source, row.updatedAt);
  }

  delete(modelId: string): boolean {
    return this.q.del.run(modelId).changes > 0;
  }
}

interface DbRow {
  model_id: string;
  provider: string;
  patch: string;
  source: 'cli' | 'http';
  updated_at: string;
}

function toRow(r: DbRow): RegisteredModelRow {
  return { modelId: r.model_id, provider: r.provider, patch: JSON.parse(r.patch) as Record<string, unknown>, source: r.source, updatedAt: r.updated_at };
}

/** A system event whose data is compared with the last one recorded under the same key. */
export type SystemFact = { [T in EventType]: { type: T; data: EventData<T> } }[EventType];

/**
 * Records a system fact once: appends `event` (sessionId null) unless the last event recorded under
 * `key` has the same type and the same data, checked and written in one IMMEDIATE transaction (so
 * two processes deriving the same fact at the same moment record it once). For facts every process
 * derives by itself: a provider loaded with the same outcome, a built-in model registered again.
 * Returns the envelope, or undefined when nothing changed.
 *
 * `digest` is the caller's canonical text of the data (keys sorted), so equal data compares equal.
 */
export function appendSystemFact(store: Store, key: string, event: SystemFact, digest: string): AnyEnvelope | undefined {
  const q = statementsOf(store.db);
  const same = () => {
    const row = q.latest.get(key) as { type: string; digest: string } | undefined;
    return row !== undefined && row.type === event.type && row.digest === digest;
  };
  if (same()) return undefined; // the common case, without taking the write lock
  return store.transaction(() => {
    if (same()) return undefined;
    const [envelope] = store.append({ sessionId: null, type: event.type, data: event.data } as AppendRequest);
    q.put.run(key, event.type, digest, envelope!.gseq);
    return envelope;
  });
}

const statements = new WeakMap<Db, { latest: Statement; put: Statement }>();
function statementsOf(db: Db): { latest: Statement; put: Statement } {
  let q = statements.get(db);
  if (!q) {
    q = {
      latest: db.prepare('SELECT type, digest FROM system_latest WHERE key = ?'),
      put: db.prepare(`INSERT INTO system_latest (key, type, digest, gseq) VALUES (?, ?, ?, ?)
        ON CONFLICT (key) DO UPDATE SET type = excluded.type, digest = excluded.digest, gseq = excluded.gseq`),
    };
    statements.set(db, q);
  }
  return q;
}

/** The newest seq of the system log (0 when it is empty): where a follower of it starts. */
export function systemLogHead(store: Store): number {
  const row = store.db.prepare(`SELECT max(seq) AS seq FROM events WHERE ifnull(session_id, '') = ''`).get() as { seq: number | null };
  return row.seq ?? 0;
}

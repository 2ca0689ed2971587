/**
 * Numbered, forward-only migrations. Migration N brings the schema from version N-1 to N
 * (`PRAGMA user_version`). They are applied inside one `BEGIN IMMEDIATE` transaction that re-reads
 * the version after taking the write lock, so processes racing to open a new file each apply
 * every migration exactly once between them.
 *
 * Never edit a released migration: add the next one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: event log, ownership, snapshots, projections (sessions, activities, inbox, messages, parts, tool calls).
  `
  CREATE TABLE events (
    gseq INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    version INTEGER NOT NULL,
    at TEXT NOT NULL,
    data TEXT NOT NULL
  );
  CREATE UNIQUE INDEX events_stream_seq ON events (ifnull(session_id, ''), seq);

  CREATE TABLE session_owner (
    session_id TEXT PRIMARY KEY,
    owner_id TEXT,
    epoch INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL
  );

  CREATE TABLE snapshots (
    session_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    machine_version TEXT NOT NULL,
    value TEXT NOT NULL,
    context TEXT NOT NULL
  );

  CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    location TEXT NOT NULL,
    model TEXT NOT NULL,
    title TEXT,
    parent_id TEXT,
    double_texting TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    activity_id TEXT,
    activities INTEGER NOT NULL,
    last_activity_status TEXT,
    turns INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL
  );

  CREATE TABLE activities (
    activity_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    turns INTEGER NOT NULL,
    turn_limit INTEGER NOT NULL,
    restarts INTEGER NOT NULL,
    reason TEXT,
    opened_seq INTEGER NOT NULL,
    settled_seq INTEGER
  );
  CREATE INDEX activities_session ON activities (session_id, opened_seq);

  CREATE TABLE session_input (
    input_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    client_id TEXT,
    mode TEXT NOT NULL,
    text TEXT NOT NULL,
    source TEXT,
    status TEXT NOT NULL,
    activity_id TEXT,
    attempt_id TEXT,
    admitted_seq INTEGER NOT NULL,
    updated_seq INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX session_input_client ON session_input (session_id, client_id) WHERE client_id IS NOT NULL;
  CREATE INDEX session_input_status ON session_input (session_id, status, admitted_seq);

  CREATE TABLE messages (
    message_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    role TEXT NOT NULL,
    activity_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    discarded INTEGER NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE INDEX messages_session ON messages (session_id, seq);

  CREATE TABLE parts (
    part_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    done INTEGER NOT NULL,
    discarded INTEGER NOT NULL,
    provider_metadata TEXT,
    seq INTEGER NOT NULL
  );
  CREATE INDEX parts_message ON parts (message_id, seq);

  CREATE TABLE tool_calls (
    call_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    activity_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    provider_call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    input TEXT NOT NULL,
    state TEXT NOT NULL,
    status TEXT,
    output TEXT,
    truncated INTEGER NOT NULL,
    provider_metadata TEXT,
    called_seq INTEGER NOT NULL,
    settled_seq INTEGER
  );
  CREATE INDEX tool_calls_message ON tool_calls (message_id, called_seq);
  CREATE INDEX tool_calls_session ON tool_calls (session_id, called_seq);
  `,
  // 2: whether an attempt finished (turn.finished), so recovery can tell a finished attempt from a lost one.
  `
  ALTER TABLE messages ADD COLUMN finished INTEGER NOT NULL DEFAULT 0;
  `,
  // 3: permission asks and `always` grants (issue 5, durable permissions), projected from
  // permission.asked / permission.replied / permission.revoked (and tool.settled, which closes an
  // ask whose call settled without a reply).
  `
  CREATE TABLE permission_requests (
    request_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    pattern TEXT,
    summary TEXT,
    status TEXT NOT NULL,
    message TEXT,
    asked_seq INTEGER NOT NULL,
    asked_at TEXT NOT NULL,
    replied_seq INTEGER
  );
  CREATE INDEX permission_requests_session ON permission_requests (session_id, status, asked_seq);
  CREATE INDEX permission_requests_call ON permission_requests (call_id);

  CREATE TABLE permission_grants (
    session_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    pattern TEXT NOT NULL,
    request_id TEXT NOT NULL,
    granted_seq INTEGER NOT NULL,
    PRIMARY KEY (session_id, tool, pattern)
  );
  `,
  // 4: attachments of an input (JSON array of resolved files and URLs, as in input.admitted), for the user message.
  `
  ALTER TABLE session_input ADD COLUMN attachments TEXT;
  `,
  // 5: the jobs projection (background jobs: bash and task with background: true).
  `
  CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    activity_id TEXT,
    call_id TEXT,
    summary TEXT NOT NULL,
    description TEXT,
    pid INTEGER,
    pgid INTEGER,
    process_start_time INTEGER,
    output_path TEXT NOT NULL,
    timeout_ms INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    status TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL,
    output_offset INTEGER NOT NULL,
    output_reported INTEGER NOT NULL,
    exit_code INTEGER,
    signal TEXT,
    reason TEXT,
    output_tail TEXT,
    output_bytes INTEGER,
    settled_at TEXT,
    started_seq INTEGER NOT NULL,
    settled_seq INTEGER
  );
  CREATE INDEX jobs_session ON jobs (session_id, started_seq);
  CREATE INDEX jobs_status ON jobs (status, session_id);
  `,
  // 6 (issue 6, NATS): the outbox. One row per destination (`nats`): the last gseq it acknowledged
  // (the cursor), the id naming this database on the wire, and the publisher lease (one publisher per
  // database; the epoch fences cursor updates). Not a projection: it is not rebuilt from events.
  `
  CREATE TABLE outbox (
    name TEXT PRIMARY KEY,
    gseq INTEGER NOT NULL,
    db_id TEXT NOT NULL,
    owner_id TEXT,
    epoch INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  `,
  // catalog (issue 8): models registered with `loom models add` / `POST /models`, seen by every
  // process (the fields given, as JSON; unset fields fall back to the entry's other sources), and
  // the last recorded system fact per key (`model:<id>`, `provider:<id>`), so a fact every process
  // derives by itself (a provider loaded, a built-in model) is recorded once, not once per process.
  // Neither is a projection: `models` is written by the command, `system_latest` with the event.
  `
  CREATE TABLE models (
    model_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    patch TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE system_latest (
    key TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    digest TEXT NOT NULL,
    gseq INTEGER NOT NULL
  );
  `,
  // budgets and usage (issue 8, loop): cost per session, tokens and cost per activity, projected from
  // `turn.finished` (its `costUsd` is new: NULL cost means no turn was priced). Sessions and
  // activities recorded before this migration get their token totals from the log here.
  `
  ALTER TABLE sessions ADD COLUMN cost_usd REAL;
  ALTER TABLE activities ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE activities ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE activities ADD COLUMN cost_usd REAL;
  UPDATE activities SET input_tokens = totals.input_tokens, output_tokens = totals.output_tokens
    FROM (
      SELECT json_extract(data, '$.activityId') AS activity_id,
        sum(json_extract(data, '$.usage.inputTokens')) AS input_tokens,
        sum(json_extract(data, '$.usage.outputTokens')) AS output_tokens
      FROM events WHERE type = 'turn.finished' GROUP BY 1
    ) AS totals
    WHERE activities.activity_id = totals.activity_id;
  `,
  // agents (issue 9, context management): the agent profile a session was created with, and the
  // one an input asked for (the activity it opens runs with it; actors/session.ts).
  `
  ALTER TABLE sessions ADD COLUMN agent TEXT;
  ALTER TABLE session_input ADD COLUMN agent TEXT;
  `,
  // checkpoints: file checkpoints (issue 9). One row per `checkpoint.recorded` (kind `change`: a
  // tool call's changes) or `checkpoint.restored` (kind `restore`: an undo or a fork restore) event,
  // keyed by its seq, and one row per file it names. `undone_seq` marks an activity's changes put
  // back by an undo. File states: `before`/`after` hold the content hash (NULL: no file), or NULL
  // with `*_note` set: the file existed and its content was not captured (the note says why).
  `
  CREATE TABLE checkpoints (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    activity_id TEXT,
    call_id TEXT,
    tool TEXT,
    incomplete TEXT,
    omitted_files INTEGER NOT NULL DEFAULT 0,
    undone_seq INTEGER,
    at TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
  );
  CREATE INDEX checkpoints_activity ON checkpoints (activity_id);
  CREATE INDEX checkpoints_at ON checkpoints (at);
  CREATE TABLE checkpoint_files (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    path TEXT NOT NULL,
    before TEXT,
    before_note TEXT,
    after TEXT,
    after_note TEXT,
    mode INTEGER,
    PRIMARY KEY (session_id, seq, path)
  );
  CREATE INDEX checkpoint_files_path ON checkpoint_files (session_id, path, seq);
  `,
];

/** Tables written only from events; `rebuildProjections` empties and refills exactly these. */
export const PROJECTION_TABLES = [
  'sessions',
  'activities',
  'session_input',
  'messages',
  'parts',
  'tool_calls',
  'permission_requests',
  'permission_grants',
  'jobs',
  'checkpoints',
  'checkpoint_files',
] as const;

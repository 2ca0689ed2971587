/**
 * Every bound in Loom, in one place. Names put the qualifier last (`*_MAX`, `*_MS`); each comment
 * says why the number is what it is. A bound that is reached is handled explicitly: the caller
 * rejects, truncates or applies the strategy named beside the bound.
 */

// ---- store -------------------------------------------------------------------------------------

/** Busy timeout for SQLite locks. Write transactions are short, so a wait this long means trouble. */
export const SQLITE_BUSY_TIMEOUT_MS = 5_000; // 5 seconds

/** Pause between tries of the WAL switch when another process holds the new file (it gets no busy handler). */
export const WAL_SWITCH_RETRY_MS = 10;

/** Largest page a paged read returns; callers asking for more get this many. Bounds replay memory. */
export const READ_PAGE_EVENTS_MAX = 1_000;

/** Default page for reads and tails when the caller names none. */
export const READ_PAGE_EVENTS_DEFAULT = 500;

/** Largest serialized `data` of one event. Bigger payloads are refused with a typed error. */
export const EVENT_DATA_BYTES_MAX = 4 * 1024 * 1024; // 4 MiB

/** Events appended in one call (one transaction). Keeps write transactions short. */
export const APPEND_BATCH_EVENTS_MAX = 10_000;

/** Buffered delta text per part before a flush is forced (size trigger of delta batching). */
export const DELTA_BATCH_BYTES_MAX = 16 * 1024; // 16 KiB

/** Longest a delta waits in the buffer before a flush (time trigger of delta batching). */
export const DELTA_FLUSH_INTERVAL_MS = 50;

/** Parts buffered at once per process; reaching it flushes everything (overflow strategy: flush). */
export const DELTA_BUFFERED_PARTS_MAX = 10_000;

/** How often a process polls `PRAGMA data_version` to notice other processes' writes. */
export const CHANGE_POLL_INTERVAL_MS = 100;

/** Rows read per page while rebuilding projections from the log. */
export const REBUILD_PAGE_EVENTS = 1_000;

// ---- ownership ---------------------------------------------------------------------------------

/** Lifetime of an owner lease. */
export const OWNER_LEASE_TTL_MS = 15_000; // 15 seconds

/** The owner renews its lease when this much of the TTL is left. */
export const OWNER_RENEW_BEFORE_MS = 10_000; // renew every ~5 seconds

/** An owner stops acting this long before its lease expires (monotonic clock), fencing aside. */
export const OWNER_STOP_MARGIN_MS = 2_000;

// ---- session loop ------------------------------------------------------------------------------

/** Provider turns per activity before it settles `turn_limit`; the next turn is never dispatched. */
export const TURN_LIMIT_DEFAULT = 25;

/** Tool calls the model may make in one turn; the rest settle at once as errors. */
export const TOOL_CALLS_PER_TURN_MAX = 32;

/** Tool calls running at once per session; the rest wait in `queued`. */
export const TOOL_CONCURRENCY_PER_SESSION_MAX = 4;

/**
 * Retries of one turn within a live process after its initial attempt (only while the attempt has
 * received no chunk): five requests in all. Enough to ride out a short overload or a rate-limit
 * window; a provider still failing after that is down, and the user should hear so.
 */
export const ATTEMPT_RETRIES_MAX = 4;

/** Base backoff before the first retry of an attempt (doubled for each further retry, capped below, then jittered). */
export const ATTEMPT_RETRY_BACKOFF_MS = 250;

/** Longest exponential backoff between retries (before jitter). A provider's retry-after may ask for more, up to ATTEMPT_RETRY_AFTER_MAX_MS. */
export const ATTEMPT_RETRY_BACKOFF_MAX_MS = 30_000; // 30 seconds

/** Restarts of one activity across process losses before it settles `failed` (crash-loop stop). */
export const ACTIVITY_RESTARTS_MAX = 10;

/** Inputs admitted but not yet consumed per session; admission beyond it is refused. */
export const INBOX_PENDING_MAX = 1_000;

/** Largest text of one input. */
export const INPUT_TEXT_BYTES_MAX = 256 * 1024; // 256 KiB

/** Sessions with a live actor in one process. */
export const LIVE_SESSIONS_MAX = 10_000;

/** Wakes remembered per session while an activity runs (they coalesce into one). */
export const WAKE_COALESCE_MAX = 1;

// ---- providers ---------------------------------------------------------------------------------

/** Whole-request timeout for one provider attempt. */
export const PROVIDER_REQUEST_TIMEOUT_MS = 10 * 60_000; // 10 minutes

/** Time to the response headers of a provider request. */
export const PROVIDER_HEADERS_TIMEOUT_MS = 60_000; // 1 minute

/** Longest silence between two chunks of a provider stream. */
export const PROVIDER_IDLE_TIMEOUT_MS = 2 * 60_000; // 2 minutes

/** Bytes of a provider response (stream or error body) read before the request is cut off. */
export const PROVIDER_RESPONSE_BYTES_MAX = 32 * 1024 * 1024; // 32 MiB

/** Bytes of an error body kept in the typed failure's message. */
export const PROVIDER_ERROR_BODY_BYTES_MAX = 4 * 1024;

/** Bytes of one SSE event; larger ones are a malformed stream. */
export const SSE_EVENT_BYTES_MAX = 4 * 1024 * 1024;

/** Tool-call arguments assembled from deltas, per call. */
export const TOOL_ARGUMENTS_BYTES_MAX = 1024 * 1024; // 1 MiB

/**
 * Bytes of an HTTP error body read at all. Larger than the excerpt kept so a JSON error document
 * still parses and its `error.message` can be shown; the rest of the body is discarded.
 */
export const PROVIDER_ERROR_BODY_READ_BYTES_MAX = 64 * 1024; // 64 KiB

/**
 * Bytes drained after a stream's `[DONE]` so its connection returns to the pool. A server sends
 * nothing but the end of the response after `[DONE]`; anything bigger closes the socket instead.
 */
export const PROVIDER_DRAIN_BYTES_MAX = 64 * 1024; // 64 KiB

/** Time allowed for that drain before the socket is closed instead of reused. */
export const PROVIDER_DRAIN_TIMEOUT_MS = 1_000; // 1 second

// ---- tools -------------------------------------------------------------------------------------

/** Default timeout of a tool call (running time only; waiting for permission does not count). */
export const TOOL_TIMEOUT_DEFAULT_MS = 2 * 60_000; // 2 minutes

/**
 * Output bytes of one tool result sent back to the model; beyond it (or TOOL_OUTPUT_LINES_MAX) the
 * model sees a head-and-tail preview and the full output is saved (tools/truncate.ts).
 */
export const TOOL_OUTPUT_BYTES_MAX = 50 * 1024; // 50 KiB

/** Lines a `read` returns when no limit is given. */
export const READ_LINES_DEFAULT = 2_000;

/** Characters of one line in `read` output; longer lines are cut. */
export const READ_LINE_CHARS_MAX = 2_000;

/** Bytes of a file `read` will open at all. */
export const READ_FILE_BYTES_MAX = 50 * 1024 * 1024; // 50 MiB

/**
 * Output bytes `read` fills with numbered lines before it stops and says where to continue. Kept
 * below TOOL_OUTPUT_BYTES_MAX so the registry never cuts off that trailer.
 */
export const READ_OUTPUT_BYTES_MAX = TOOL_OUTPUT_BYTES_MAX - 1024;

/** Leading bytes `read` inspects for a NUL to call a file binary (the heuristic git and grep use). */
export const READ_BINARY_SNIFF_BYTES = 8 * 1024; // 8 KiB

/** Bytes `read` loads per system call; between chunks it checks its signal, so a cancel stops it promptly. */
export const READ_CHUNK_BYTES = 1024 * 1024; // 1 MiB

/** Length of a tool name. OpenAI function names allow at most 64 characters of `[A-Za-z0-9_-]`. */
export const TOOL_NAME_CHARS_MAX = 64;

/** Tools in one registry. OpenAI Chat Completions accepts at most 128 tools in one request. */
export const TOOLS_REGISTERED_MAX = 128;

/** Issues listed in one tool-input error; the model needs the first few, not a wall of text. */
export const TOOL_INPUT_ISSUES_MAX = 5;

// ---- config ------------------------------------------------------------------------------------

/** Bytes of one config file. */
export const CONFIG_FILE_BYTES_MAX = 1024 * 1024; // 1 MiB

/** Highest `limits.turnLimit` a config may set; beyond it a runaway activity burns money for hours. */
export const CONFIG_TURN_LIMIT_MAX = 1_000;

/** Highest `limits.toolCallsPerTurn` a config may set; each call is a child actor and a result. */
export const CONFIG_TOOL_CALLS_PER_TURN_MAX = 256;

/** Highest `limits.toolConcurrency` a config may set; each running call may hold a process or files. */
export const CONFIG_TOOL_CONCURRENCY_MAX = 64;

/** Longest `limits.toolTimeoutMs` a config may set; longer work belongs in a background job. */
export const CONFIG_TOOL_TIMEOUT_MAX_MS = 60 * 60_000; // 1 hour

/** Permission rules in one config file; rules are scanned on every tool call. */
export const CONFIG_PERMISSION_RULES_MAX = 1_000;

// ---- CLI ---------------------------------------------------------------------------------------

/** How often `tail --follow` and a non-owning `prompt --follow` poll for new events. */
export const FOLLOW_POLL_INTERVAL_MS = 100;

// ---- transport ---------------------------------------------------------------------------------

/** Subscribers (event and signal handlers) on one in-process transport; more is a leak. */
export const TRANSPORT_SUBSCRIBERS_MAX = 10_000;

/** Longest SIGTERM waits for in-flight provider streams and tools before stopping anyway. */
export const DRAIN_TIMEOUT_MS = 30_000; // 30 seconds

// ---- recovery ----------------------------------------------------------------------------------

/** Automatic retries of an ambiguous attempt per activity when the provider is idempotent. */
export const RECOVERY_RETRY_BUDGET_DEFAULT = 2;

/** Upper bounds of the recovery settings a config may choose. */
export const CONFIG_RECOVERY_RETRY_BUDGET_MAX = 20;
export const CONFIG_RECOVERY_RESTARTS_MAX = 1_000;

/** Sessions restored per batch by startup discovery before yielding to other work. */
export const DISCOVERY_BATCH_SESSIONS = 50;

/** Unsettled sessions one discovery pass picks up (the rest wait for the next pass). */
export const DISCOVERY_SESSIONS_MAX = 100_000;

/** Longest discovery works before yielding to the event loop (new work waits at most about this). */
export const DISCOVERY_SLICE_MS = 10;

// ---- subagents (the task tool) -----------------------------------------------------------------

/**
 * Subagent nesting below a session nobody started with `task`: a subagent may start its own, down to
 * this many levels; a deeper `task` call is refused. Each level holds a live session actor and a
 * provider stream, and a model that delegates in a loop would otherwise never stop.
 */
export const SUBAGENT_DEPTH_MAX = 3;

/** Running time of one `task` call (the whole child activity, all its turns and tools). */
export const TASK_TIMEOUT_MS = 30 * 60_000; // 30 minutes

/**
 * How long a cancelled subagent is waited for to settle before its actor is stopped anyway (then it
 * stays unsettled and is recovered by its next owner). Added to TASK_TIMEOUT_MS for the tool's
 * outer timeout, so the task's own deadline fires first and its error names the child session.
 */
export const SUBAGENT_SETTLE_TIMEOUT_MS = 10_000; // 10 seconds

/**
 * Bytes of the child's final answer put in the task result. Below TOOL_OUTPUT_BYTES_MAX so the
 * registry never cuts the line naming the child session.
 */
export const TASK_ANSWER_BYTES_MAX = TOOL_OUTPUT_BYTES_MAX - 1024;

/** Characters of a task's description; it becomes the child session's title, shown in listings. */
export const TASK_DESCRIPTION_CHARS_MAX = 200;

/** Characters of an agent profile name in a task call. */
export const TASK_AGENT_CHARS_MAX = 64;

// ---- webfetch, output truncation, attachments (issue 5) ----------------------------------------

/**
 * Lines of one tool result sent back to the model; beyond it the model sees a head-and-tail
 * preview and the path of the full output. 2,000 lines is what a model reads usefully in one go.
 */
export const TOOL_OUTPUT_LINES_MAX = 2_000;

/**
 * Bytes of a full tool output saved under `$LOOM_HOME/tool-output/` when the preview cuts it; the
 * rest of an even bigger output is dropped, and the notice says so. Tools bound what they capture
 * (bash, grep) well below this, so in practice the whole output is kept.
 */
export const TOOL_OUTPUT_SAVED_BYTES_MAX = 16 * 1024 * 1024; // 16 MiB

/**
 * Body bytes `webfetch` (and a URL attachment) reads; the request is aborted there and the page is
 * cut. HTML is parsed into a DOM after reading, synchronously: 2 MiB of dense markup converts in
 * about 1.3 s and 300 MB on the reference machine, which is the most one call should cost.
 */
export const WEBFETCH_BODY_BYTES_MAX = 2 * 1024 * 1024; // 2 MiB

/** Whole-fetch time (connect, redirects, headers, body) when the call names none. */
export const WEBFETCH_TIMEOUT_DEFAULT_MS = 30_000; // 30 seconds

/** Longest whole-fetch time a call may ask for; slower sources belong in a background job. */
export const WEBFETCH_TIMEOUT_MAX_MS = 120_000; // 2 minutes

/** Time to open the TCP (and TLS) connection to one host. */
export const WEBFETCH_CONNECT_TIMEOUT_MS = 10_000; // 10 seconds

/** Time from sending the request to the response headers. */
export const WEBFETCH_HEADERS_TIMEOUT_MS = 20_000; // 20 seconds

/** Longest silence between two body chunks; a server that stalls mid-body is given up on. */
export const WEBFETCH_BODY_IDLE_TIMEOUT_MS = 20_000; // 20 seconds

/** Redirects followed per fetch (browsers allow 20; a page needing more than 5 is misconfigured). */
export const WEBFETCH_REDIRECTS_MAX = 5;

/** Characters of a URL `webfetch` accepts (servers commonly refuse longer request lines). */
export const WEBFETCH_URL_CHARS_MAX = 8 * 1024;

/** Leading body bytes inspected for a NUL to call an untyped response binary (as `read` does). */
export const WEBFETCH_BINARY_SNIFF_BYTES = 8 * 1024; // 8 KiB

/** Attachments of one input; each becomes a block of the user message. */
export const INPUT_ATTACHMENTS_MAX = 16;

/** Text bytes of one attachment (a file's size, a fetched page's text); larger ones are refused. */
export const INPUT_ATTACHMENT_BYTES_MAX = 256 * 1024; // 256 KiB, like INPUT_TEXT_BYTES_MAX

/**
 * Text bytes of all attachments of one input. Together with the input text this stays well below
 * EVENT_DATA_BYTES_MAX, since the attachments are stored in the `input.admitted` event.
 */
export const INPUT_ATTACHMENTS_BYTES_MAX = 1024 * 1024; // 1 MiB

/** Characters of an attachment's name (its path or URL as given). */
export const INPUT_ATTACHMENT_NAME_CHARS_MAX = 8 * 1024;

// ---- permissions -------------------------------------------------------------------------------

/** Characters of a call's input kept in `permission.asked` (what another process shows when asking). */
export const PERMISSION_SUMMARY_CHARS_MAX = 1_000;

/** Characters of the message a permission reply carries to the model. */
export const PERMISSION_MESSAGE_CHARS_MAX = 2_000;

/** `always` grants one session may hold; each is checked on every ask, and each came from a person. */
export const PERMISSION_GRANTS_PER_SESSION_MAX = 1_000;

/** Pending asks and grants `loom permit` and `loom inspect` list for one session. */
export const PERMISSION_LIST_MAX = 1_000;

// ---- file tools (write, edit, list, glob, grep) -----------------------------------------------

/** Bytes `write` writes in one call. Tool arguments are capped at TOOL_ARGUMENTS_BYTES_MAX anyway. */
export const WRITE_CONTENT_BYTES_MAX = 1024 * 1024; // 1 MiB

/** Bytes of a file `edit` loads; it holds the file and the edited copy in memory at once. */
export const EDIT_FILE_BYTES_MAX = 10 * 1024 * 1024; // 10 MiB

/** Entries `list` shows in one call; a tree longer than this is no use to the model. */
export const LIST_ENTRIES_MAX = 1_000;

/** Directory levels `list` descends below its start. */
export const LIST_DEPTH_MAX = 8;

/** Entries read from one directory by any walk; bounds the memory a huge directory can take. */
export const WALK_DIR_ENTRIES_MAX = 20_000;

/** Entries (files, directories, links) `glob` and `grep` visit before they stop walking. */
export const WALK_ENTRIES_MAX = 200_000;

/** Directory levels `glob` and `grep` descend; each open level holds one descriptor. */
export const WALK_DEPTH_MAX = 48;

/** Characters of a glob pattern (`glob`'s pattern, `grep`'s include, `list`'s ignore entries). */
export const GLOB_PATTERN_CHARS_MAX = 1_000;

/** Patterns in `list`'s ignore array. */
export const LIST_IGNORE_PATTERNS_MAX = 50;

/** Paths `glob` returns, newest first; it says when it cut the rest. */
export const GLOB_RESULTS_MAX = 100;

/** Matching lines `grep` returns; ripgrep is stopped once it has sent this many. */
export const GREP_MATCHES_MAX = 100;

/** Bytes of one matching line ripgrep prints (`--max-columns`); longer lines show a preview. */
export const GREP_LINE_COLUMNS_MAX = 500;

/** Bytes of one line read from ripgrep's output; the rest of a longer line is skipped unread-into-memory. */
export const GREP_LINE_BYTES_MAX = 8 * 1024; // 8 KiB

/** Bytes of ripgrep output read in one `grep` call; ripgrep is killed beyond it. */
export const GREP_OUTPUT_BYTES_MAX = 1024 * 1024; // 1 MiB

/** Bytes of ripgrep's stderr kept for an error message. */
export const GREP_STDERR_BYTES_MAX = 4 * 1024; // 4 KiB

/**
 * Files handed to one ripgrep process. `grep` opens each file itself (confined) and passes the
 * descriptors, so this bounds the descriptors held open at once.
 */
export const GREP_BATCH_FILES = 128;

// ---- bash and background jobs (issue 5) --------------------------------------------------------

/** Default running time of a foreground `bash` command. */
export const BASH_TIMEOUT_DEFAULT_MS = 2 * 60_000; // 2 minutes

/** Longest running time a foreground `bash` call may ask for; longer work belongs in a background job. */
export const BASH_TIMEOUT_MAX_MS = 10 * 60_000; // 10 minutes

/** Bytes of a `bash` command line; a longer one is a script and belongs in a file. */
export const BASH_COMMAND_BYTES_MAX = 64 * 1024; // 64 KiB

/**
 * Output bytes (stdout and stderr interleaved) a foreground `bash` call keeps: the first and the
 * last half of this; the middle is dropped as it streams and the result says how much. Below
 * TOOL_OUTPUT_BYTES_MAX so the registry never cuts the exit status line off.
 */
export const BASH_OUTPUT_BYTES_MAX = 40 * 1024; // 40 KiB

/** Between SIGTERM and SIGKILL when a process group is stopped: time to exit cleanly. */
export const PROCESS_KILL_GRACE_MS = 2_000; // 2 seconds

/** After SIGKILL, longest wait for every process of the group to be gone before giving up. */
export const PROCESS_EXIT_WAIT_MS = 2_000; // 2 seconds

/** How often a stopping process group is checked for members still alive. */
export const PROCESS_GROUP_POLL_INTERVAL_MS = 25;

/** Entries of /proc scanned to find a process group's members (bounds one scan on a huge host). */
export const PROC_SCAN_ENTRIES_MAX = 100_000;

/** Default running time of a background job (`bash` or `task` with `background: true`). */
export const JOB_TIMEOUT_DEFAULT_MS = 30 * 60_000; // 30 minutes

/** Longest running time a background job may ask for; every job has a deadline. */
export const JOB_TIMEOUT_MAX_MS = 4 * 60 * 60_000; // 4 hours

/** Background jobs running at once per session; a start beyond it fails with a clear error. */
export const JOBS_RUNNING_PER_SESSION_MAX = 8;

/** How often a job's watcher checks its process and its output file. */
export const JOB_POLL_INTERVAL_MS = 250;

/** At most one `job.output` event per job per this interval (new output is batched meanwhile). */
export const JOB_OUTPUT_INTERVAL_MS = 1_000; // 1 second

/** Bytes of output in one `job.output` event; when more arrived, the newest bytes are kept. */
export const JOB_OUTPUT_EVENT_BYTES_MAX = 4 * 1024; // 4 KiB

/** Bytes of output one job reports in `job.output` events in all; the file keeps everything. */
export const JOB_OUTPUT_EVENTS_BYTES_MAX = 64 * 1024; // 64 KiB

/** Bytes of a job's output tail in `job.settled` and in the result delivered to the session. */
export const JOB_OUTPUT_TAIL_BYTES_MAX = 8 * 1024; // 8 KiB

/** Characters of a job's command or prompt summary in `job.started` and in listings. */
export const JOB_SUMMARY_CHARS_MAX = 500;

/** Jobs `loom jobs` lists at once (newest first). */
export const JOBS_LIST_MAX = 1_000;

// ---- operations: remove, export/import, retention, metrics, CLI progress (issue 7, ops) --------

/**
 * Bytes of one line of an export file `loom session import` reads: one envelope, whose data is at
 * most EVENT_DATA_BYTES_MAX, plus room for the envelope's own fields and JSON escaping. A longer
 * line cannot be an event this store wrote; it is refused naming the line, before it fills memory.
 */
export const IMPORT_LINE_BYTES_MAX = 2 * 4 * 1024 * 1024 + 64 * 1024; // 8 MiB + 64 KiB

/**
 * Events one import may hold. An import is one transaction (nothing is stored when a line is bad),
 * so it holds the write lock while it runs: this bounds how long other writers wait.
 */
export const IMPORT_EVENTS_MAX = 500_000;

/** Bytes read from an import file per read call. */
export const IMPORT_READ_CHUNK_BYTES = 256 * 1024; // 256 KiB

/** Sessions one retention pass removes; the rest wait for the next pass (bounded work per pass). */
export const RETENTION_SESSIONS_PER_PASS_MAX = 200;

/** Directory entries one retention pass looks at under tool-output/ and jobs/ (bounds a pass on a huge home). */
export const RETENTION_FILES_PER_PASS_MAX = 20_000;

/** How often a long-lived process (serve, worker) applies the retention config. */
export const RETENTION_INTERVAL_MS = 60 * 60_000; // 1 hour

/** Upper bound of `retention.sessionsDays` / `retention.toolOutputDays` in config (about 100 years). */
export const CONFIG_RETENTION_DAYS_MAX = 36_500;

/**
 * Activities, attempts and tool calls whose start the metrics recorder remembers while they run
 * (to observe their durations when they end). Beyond it the oldest is forgotten: its duration is
 * not observed, which a counter records.
 */
export const METRICS_OPEN_SPANS_MAX = 10_000;

/**
 * Label sets one metric family keeps (for example tool × status): beyond it, new sets are counted
 * under the label value `other`, so a plugin with many tools cannot grow the exposition unbounded.
 */
export const METRICS_LABEL_SETS_MAX = 200;

/** Delay before a TTY spinner appears: short waits print nothing. */
export const SPINNER_DELAY_MS = 400;

/** Interval between two spinner frames on a TTY. */
export const SPINNER_INTERVAL_MS = 100;

// ---- HTTP server, SSE and SDK (issue 7, api) ----

/** Port `loom serve` listens on when --port is not given. */
export const SERVER_PORT_DEFAULT = 4747;

/** Bytes of a request body; larger bodies get 413 before they are read. Room for the largest input with attachments. */
export const HTTP_BODY_BYTES_MAX = 2 * 1024 * 1024; // 2 MiB

/** Longest time to receive one request's headers and body (slowloris); SSE responses are not bounded by it. */
export const HTTP_REQUEST_TIMEOUT_MS = 30_000; // 30 seconds

/** Random bytes in a generated server token (hex-encoded in $LOOM_HOME/server-token). */
export const SERVER_TOKEN_BYTES = 32;

/** Events one `GET /sessions/:id/events` page returns at most (the `limit` query is capped by it). */
export const HTTP_EVENTS_PAGE_MAX = 1_000;

/** Sessions `GET /sessions` lists at most (newest first). */
export const HTTP_SESSIONS_LIST_MAX = 1_000;

/** A comment frame is written this often on an idle SSE stream, so proxies and clients see it is alive. */
export const SSE_HEARTBEAT_INTERVAL_MS = 15_000; // 15 seconds

/**
 * Events waiting to be written to one SSE connection. A consumer that falls this far behind is
 * closed cleanly (a final comment names its cursor); it resumes from `Last-Event-ID` with nothing lost.
 */
export const SSE_CONNECTION_BUFFER_EVENTS_MAX = 5_000;

/** Bytes of frames waiting for one SSE connection; past it the connection is closed like above. */
export const SSE_CONNECTION_BUFFER_BYTES_MAX = 8 * 1024 * 1024; // 8 MiB

/** SSE connections one server holds at once; one more gets 503. */
export const SSE_CONNECTIONS_MAX = 1_000;

/** Events the server's event hub reads from SQLite per page when it fans new events out. */
export const SSE_HUB_PAGE_EVENTS = 500;

/** Sessions `loom serve` runs at once from HTTP requests; one more admission still commits and waits for a slot. */
export const SERVER_RUNNING_SESSIONS_MAX = 256;

/** The SDK's timeout for one non-streaming request. */
export const SDK_REQUEST_TIMEOUT_MS = 30_000; // 30 seconds

/** Reconnections the SDK's event iterator makes in a row without receiving an event before it gives up. */
export const SDK_SSE_RECONNECTS_MAX = 10;

/** Wait before the SDK's event iterator reconnects (doubled per failure, capped at 10×). */
export const SDK_SSE_RECONNECT_DELAY_MS = 250;

// ---- inspector page (issue 7, inspector) ----

/** Timeline rows the inspector page keeps; older rows are dropped first (the log keeps everything). */
export const INSPECTOR_TIMELINE_ROWS_MAX = 2_000;

/** Events the page loads when a session is opened (the newest ones); the SSE stream continues from there. */
export const INSPECTOR_HISTORY_EVENTS_MAX = 500;

/** At most one refresh of a session's state (and one of the session list) per this interval while events stream in. */
export const INSPECTOR_REFRESH_INTERVAL_MS = 250;

/** Characters of an event's data shown on its timeline row; the whole event opens on click. */
export const INSPECTOR_EVENT_PREVIEW_CHARS_MAX = 240;

/** Bytes of one inspector asset served from disk (the bundle is far smaller; a bigger file is a build mistake). */
export const INSPECTOR_ASSET_BYTES_MAX = 4 * 1024 * 1024; // 4 MiB

// ---- NATS transport, outbox, owner mirror (issue 6) --------------------------------------------

/** One attempt to open a NATS connection; a refused loopback connection fails far sooner. */
export const NATS_CONNECT_TIMEOUT_MS = 2_000; // 2 seconds

/**
 * Wait between reconnect attempts once connected (the client reconnects forever), and the first
 * step of the backoff between initial connect attempts. Short: the server is usually on loopback.
 */
export const NATS_RECONNECT_WAIT_MS = 250;

/** Cap of the backoff between initial connect attempts while the server has never answered. */
export const NATS_CONNECT_BACKOFF_MAX_MS = 5_000; // 5 seconds

/** Client pings: a server that stops answering is noticed after interval × outstanding. */
export const NATS_PING_INTERVAL_MS = 10_000; // 10 seconds
export const NATS_PINGS_OUTSTANDING_MAX = 2;

/** A JetStream publish ack, a stream or KV API call: how long one request may take. */
export const NATS_REQUEST_TIMEOUT_MS = 5_000; // 5 seconds

/**
 * How long `wake`/`cancel` wait for a first connection before failing with NatsUnavailableError.
 * Signals are advisory (the log is the truth, owners also poll), so a CLI never waits long.
 */
export const NATS_SIGNAL_WAIT_MS = 1_000; // 1 second

/** JetStream stream LOOM_EVENTS: events older than this are removed (replay from SQLite instead). */
export const NATS_STREAM_MAX_AGE_MS = 7 * 24 * 60 * 60_000; // 7 days

/** JetStream stream LOOM_EVENTS: the oldest events are discarded beyond this size. */
export const NATS_STREAM_MAX_BYTES = 1024 * 1024 * 1024; // 1 GiB

/**
 * The stream's Nats-Msg-Id de-duplication window: a republish after a crash between the ack and
 * the cursor update is dropped within it (and the publisher reconciles its cursor with the
 * stream's last message when it takes the lease, which covers longer gaps).
 */
export const NATS_STREAM_DUPLICATE_WINDOW_MS = 10 * 60_000; // 10 minutes

/**
 * Bytes kept free for headers below the server's max_payload. An envelope larger than what is
 * left is published as a stub with `data: null` and `dataOmitted` (read it from SQLite).
 */
export const NATS_HEADERS_RESERVE_BYTES = 1024; // 1 KiB

/** Messages one `subscribe` consumer may have delivered but not yet handled. */
export const NATS_SUBSCRIBE_PENDING_MAX = 256;

/** Backoff before a failed subscription consumer is created again: doubles from MIN up to MAX. */
export const NATS_SUBSCRIBE_BACKOFF_MIN_MS = 50;
export const NATS_SUBSCRIBE_BACKOFF_MAX_MS = 2_000; // 2 seconds

/** Events read from SQLite per outbox page (the page is held in memory while it is published). */
export const OUTBOX_PAGE_EVENTS = 256;

/** Outbox publishes sent and not yet acknowledged by JetStream. */
export const OUTBOX_INFLIGHT_MAX = 64;

/** The outbox publisher lease (one publisher per database); renewed every OUTBOX_RENEW_INTERVAL_MS. */
export const OUTBOX_LEASE_TTL_MS = 10_000; // 10 seconds
export const OUTBOX_RENEW_INTERVAL_MS = 3_000; // 3 seconds

/** Retry backoff of the outbox while NATS is down or refuses: doubles from MIN up to MAX. */
export const OUTBOX_RETRY_BACKOFF_MIN_MS = 100;
export const OUTBOX_RETRY_BACKOFF_MAX_MS = 5_000; // 5 seconds

/** How long a closing process keeps publishing what it committed before it leaves the rest to the next publisher. */
export const OUTBOX_DRAIN_TIMEOUT_MS = 5_000; // 5 seconds

/**
 * KV bucket loom_owners: an entry not written for this long expires (an owner renews every few
 * seconds, so only abandoned entries expire). nats-server 2.9 sends no watch event on expiry.
 */
export const OWNERS_KV_TTL_MS = 60_000; // 1 minute

/** Entries `OwnerMirror.list` returns at most. */
export const OWNERS_KV_LIST_MAX = 10_000;

/** Events a NATS-fed tail holds before yielding them; beyond it, it drops them and reads SQLite. */
export const NATS_TAIL_BUFFER_EVENTS_MAX = 1_000;

/**
 * How often a NATS-fed tail still polls SQLite while NATS is connected (it polls every
 * CHANGE_POLL_INTERVAL_MS while it is not): events from a process that publishes to no NATS
 * still arrive, this much later.
 */
export const NATS_TAIL_FALLBACK_POLL_MS = 1_000; // 1 second

/**
 * Lifetime of one pull request of a `subscribe` consumer (heartbeats come every half of it): after
 * a server restart the consumer notices it is gone within about this long and is made again.
 * nats.js's minimum is 1 second.
 */
export const NATS_CONSUMER_EXPIRES_MS = 2_000; // 2 seconds

// ---- workers (loom worker) ---------------------------------------------------------------------

/**
 * Sessions one worker runs at once when `--capacity` is not given. Sessions waiting for a decision
 * (a recovery decision, permission replies) stay owned but do not count: they use no provider.
 */
export const WORKER_CAPACITY_DEFAULT = 32;

/** Largest `--capacity`; every running session holds a provider stream and tool children. */
export const WORKER_CAPACITY_MAX = 1_000;

/**
 * How often a worker looks for claimable sessions even when no other process committed anything:
 * a lease that expires changes nothing in the database, so only time reveals it.
 */
export const WORKER_SCAN_INTERVAL_MS = 1_000; // 1 second

/** Candidate sessions read by one claim pass (the rest wait for the next pass). */
export const WORKER_CLAIM_BATCH_MAX = 64;

/** Distinct owners on this host checked for a dead process in one claim pass. */
export const WORKER_LOCAL_OWNERS_MAX = 64;

/**
 * Sessions a worker remembers having released quiet (parked after a cancel, or failing to
 * restore), with the last seq it saw, so a claim pass does not take them again until something new
 * is appended. Oldest forgotten first; forgetting one costs one needless restore.
 */
export const WORKER_QUIET_MEMO_MAX = 10_000;

// ---- anthropic provider (issue 8) --------------------------------------------------------------

/**
 * `max_tokens` sent to the Anthropic Messages API when the request names none: the API requires
 * the field, and this is large enough for a long answer without letting one turn run away. Tokens.
 */
export const ANTHROPIC_MAX_TOKENS_DEFAULT = 8_192;

// ---- auth: the credentials file (issue 8 item 6) -----------------------------------------------

/**
 * Bytes of `$LOOM_HOME/auth.json`. Credentials are small (a few hundred bytes each; a JWT a few
 * KiB), so a bigger file is not ours or is broken: it is refused, never read into memory whole.
 */
export const AUTH_FILE_BYTES_MAX = 256 * 1024; // 256 KiB

/** Provider entries the credentials file holds; one per provider id is all anyone needs. */
export const AUTH_PROVIDERS_MAX = 256;

/** Characters of a provider id (`openai`, `my-gateway`): it names an environment variable too. */
export const AUTH_PROVIDER_ID_CHARS_MAX = 64;

/**
 * Bytes of one credential as JSON (a key, a token with its refresh token, a set of headers).
 * Bounds `loom auth set`'s stdin, a `LOOM_AUTH_<ID>` variable and a refresher's answer.
 */
export const AUTH_CREDENTIAL_BYTES_MAX = 64 * 1024; // 64 KiB

/** Bytes of one secret (a key, a token, a password, a header value); JWTs run to a few KiB. */
export const AUTH_SECRET_BYTES_MAX = 16 * 1024; // 16 KiB

/**
 * Characters a secret has at least. Shorter strings cannot be kept out of error text reliably
 * (redacting "ab" would mangle every message), so keys, tokens and passwords this short are
 * refused, and shorter header values are treated as not secret (`X-Org: 7`).
 */
export const AUTH_SECRET_CHARS_MIN = 4;

/** Headers one `headers` credential carries; a gateway needs a handful. */
export const AUTH_HEADERS_MAX = 32;

/**
 * Characters at the end of an error text that, being the start of a known secret, are redacted
 * too: a provider's echo of a key cut off by the error-body bound leaves a prefix of it. Shorter
 * tails are too common in ordinary text to mean anything.
 */
export const AUTH_REDACT_PARTIAL_CHARS_MIN = 6;

/**
 * An OAuth token whose `expiresAt` is this close is refreshed before use: a request started with
 * it must not see it expire while the provider checks it.
 */
export const AUTH_REFRESH_MARGIN_MS = 2 * 60_000; // 2 minutes

/** How long one refresher call may take before the request that needed it fails, naming the provider. */
export const AUTH_REFRESH_TIMEOUT_MS = 30_000; // 30 seconds

/**
 * How long a writer of the credentials file waits for its lock. A refresh holds the lock while it
 * runs (so two processes never spend one refresh token twice), so this exceeds AUTH_REFRESH_TIMEOUT_MS.
 */
export const AUTH_LOCK_TIMEOUT_MS = 45_000; // 45 seconds

/** Pause between two attempts to take the lock of the credentials file. */
export const AUTH_LOCK_RETRY_MS = 20;

/**
 * A lock file older than this is stale even when its holder cannot be checked (another host on a
 * shared home): no holder keeps it longer than a refresh plus a write.
 */
export const AUTH_LOCK_STALE_MS = 2 * 60_000; // 2 minutes

/**
 * Quiet time after the last change to the credentials file before it is read again: an editor's
 * save or an atomic rename arrives as several watch events.
 */
export const AUTH_WATCH_DEBOUNCE_MS = 100;
// ---- config v2 and hot reload (issue 8) ----------------------------------------------------------

/** Provider entries in one config file; each may become an adapter and a catalog of models. */
export const CONFIG_PROVIDERS_MAX = 64;

/** Models listed under one provider in config; the catalog holds every one of them. */
export const CONFIG_PROVIDER_MODELS_MAX = 1_000;

/** Extra headers of one provider; every request carries all of them. */
export const CONFIG_PROVIDER_HEADERS_MAX = 32;

/** Characters of one configured header value (servers commonly refuse header sections over 8 KiB). */
export const CONFIG_PROVIDER_HEADER_CHARS_MAX = 4_096;

/** Largest context or output size a model entry may declare, in tokens (far beyond any model today). */
export const CONFIG_MODEL_TOKENS_MAX = 100_000_000;

/** Largest price a model entry may declare, in US dollars per million tokens (a typo guard). */
export const CONFIG_MODEL_COST_MAX = 100_000;

/**
 * Quiet time after the last change of a watched config file before it is read: editors save in
 * several writes (truncate, write, rename), and reading between them would see a broken file.
 */
export const CONFIG_RELOAD_DEBOUNCE_MS = 100;

/** Longest a reload waits while a file keeps changing (a file rewritten in a loop still gets read). */
export const CONFIG_RELOAD_DEBOUNCE_MAX_MS = 1_000; // 1 second

/**
 * How often config files are checked (size, mtime, inode) where fs.watch fails or is turned off
 * (`LOOM_CONFIG_WATCH=poll`; network filesystems, exhausted inotify watches).
 */
export const CONFIG_POLL_INTERVAL_MS = 2_000; // 2 seconds

/**
 * Directories whose config one process keeps loaded and watched (one watch each). The least
 * recently used is dropped beyond it (loaded again, unwatched, on its next use).
 */
export const CONFIG_SCOPES_MAX = 256;

/** Changed keys one `config.updated` event lists; the rest are counted in its `more` field. */
export const CONFIG_UPDATED_KEYS_MAX = 200;

/** Names tried for a `loom config migrate` backup when the timestamped one exists. */
export const CONFIG_BACKUP_NAMES_MAX = 100;

/** Listeners of one config service (services reconfiguring on change); more is a leak. */
export const CONFIG_SUBSCRIBERS_MAX = 1_000;
// ---- plugins and hooks (issue 8, plugins) ------------------------------------------------------

/** Entries of the `plugins` config key: each is imported into every loom process that runs sessions. */
export const PLUGINS_MAX = 32;

/**
 * Time one plugin has to load (import its module and run its function) unless its config entry
 * says otherwise. Loading runs in the background, so this bounds how long a plugin may stay
 * "loading", never how long startup waits (it waits for none).
 */
export const PLUGIN_LOAD_TIMEOUT_DEFAULT_MS = 30_000; // 30 seconds

/** The largest `timeoutMs` a plugin entry may ask for. */
export const PLUGIN_LOAD_TIMEOUT_MAX_MS = 5 * 60_000; // 5 minutes

/**
 * Time one hook has to finish with its draft. Hooks run in the path of a provider request, a
 * tool call, an admission or a permission decision, so a slow hook slows every one of those; a
 * hook past this is treated like one that threw (its draft is discarded).
 */
export const PLUGIN_HOOK_TIMEOUT_MS = 5_000; // 5 seconds

/** Hooks one plugin may register (over all hook names): each runs on a hot path. */
export const PLUGIN_HOOKS_PER_PLUGIN_MAX = 64;

/** `loom.on` subscriptions one plugin may hold: each reads every committed event. */
export const PLUGIN_LISTENERS_PER_PLUGIN_MAX = 32;

/**
 * Events waiting for one `loom.on` handler. A handler slower than the log drops the OLDEST waiting
 * events (sliding), and the plugin's log says how many: a subscriber cannot grow memory or hold
 * back the process.
 */
export const PLUGIN_EVENT_QUEUE_MAX = 1_000;

/** Time one `loom.on` handler call has before the next event is delivered (the slow call is abandoned, not cut). */
export const PLUGIN_HANDLER_TIMEOUT_MS = 10_000; // 10 seconds

/** Characters of a plugin's error message kept in `plugin.failed` / `plugin.hook.failed` (and of one log line). */
export const PLUGIN_ERROR_MESSAGE_CHARS_MAX = 1_000;

/** Names of tools, models or hooks listed in one `plugin.loaded` event (the rest are counted). */
export const PLUGIN_LOADED_NAMES_MAX = 64;

/** Extra HTTP headers a `chat.headers` hook may leave on one provider request. */
export const PLUGIN_HEADERS_MAX = 32;

/** Characters of one header value a `chat.headers` hook may set. */
export const PLUGIN_HEADER_VALUE_CHARS_MAX = 8 * 1024;

/** Characters of a session title `loom.session.create` accepts. */
export const PLUGIN_SESSION_TITLE_CHARS_MAX = 200;
// ---- MCP servers and the ACP surface (issue 10) ------------------------------------------------

/**
 * Bytes of one tool's JSON Schema as it is offered to the model. MCP servers bring their own
 * schemas; every provider request carries every schema, so one huge schema costs every turn.
 */
export const TOOL_INPUT_SCHEMA_BYTES_MAX = 32 * 1024; // 32 KiB

/** MCP servers in one config: each may be a child process and holds a connection. */
export const MCP_SERVERS_MAX = 32;

/** Characters of an MCP server's name in config; it becomes part of its tools' names (`mcp_<server>_<tool>`). */
export const MCP_SERVER_NAME_CHARS_MAX = 32;

/** Arguments of a stdio server's command. */
export const MCP_ARGS_MAX = 256;

/** Environment variables (stdio) or headers (HTTP) given to one server. */
export const MCP_ENV_ENTRIES_MAX = 256;

/**
 * Tools taken from one MCP server; the rest are left out and `loom mcp ls` says how many. The
 * registry holds at most TOOLS_REGISTERED_MAX tools in all.
 */
export const MCP_TOOLS_PER_SERVER_MAX = 64;

/** Characters of an MCP tool's description offered to the model (some servers write essays). */
export const MCP_TOOL_DESCRIPTION_CHARS_MAX = 2_000;

/** One connection attempt: spawn or reach the server, initialize, list its tools. */
export const MCP_CONNECT_TIMEOUT_MS = 30_000; // 30 seconds

/** Backoff between connection attempts of one server: doubles from MIN up to MAX. */
export const MCP_RECONNECT_BACKOFF_MIN_MS = 500;
export const MCP_RECONNECT_BACKOFF_MAX_MS = 30_000; // 30 seconds

/**
 * Consecutive failures of one server (an attempt that fails, or a connection lost within
 * MCP_STABLE_UPTIME_MS of being made) before it is given up (`stopped`) until the process restarts
 * or its config changes: a broken server must not be respawned forever.
 */
export const MCP_CONNECT_ATTEMPTS_MAX = 10;

/** A connection that stayed up this long was healthy: losing it starts the failure count again. */
export const MCP_STABLE_UPTIME_MS = 60_000; // 1 minute

/** How often a ready connection is pinged, so a server that went away is noticed without a call. */
export const MCP_PING_INTERVAL_MS = 30_000; // 30 seconds

/** How long a ping (also the probe after a transport error) may take before the connection counts as lost. */
export const MCP_PING_TIMEOUT_MS = 5_000; // 5 seconds

/** Bytes of one message from a stdio server (the SDK's read buffer) and of one HTTP response body. */
export const MCP_MESSAGE_BYTES_MAX = 8 * 1024 * 1024; // 8 MiB

/** Tail of a stdio server's stderr kept for error messages ("exited: …"); the rest is dropped. */
export const MCP_STDERR_TAIL_BYTES = 4 * 1024; // 4 KiB

/** Pages of `tools/list` read in one listing (a server whose cursor never ends is cut off here). */
export const MCP_LIST_PAGES_MAX = 16;

/** `notifications/tools/list_changed` arriving within this window are answered with one listing. */
export const MCP_LIST_CHANGED_DEBOUNCE_MS = 100;

/**
 * How long `loom run` and `loom prompt` wait for configured MCP servers before the first turn; a
 * server slower than this joins later (its tools appear from the next turn on).
 */
export const MCP_STARTUP_WAIT_MS = 15_000; // 15 seconds

/** How long `loom mcp ls` waits for every server's first connection attempt. */
export const MCP_LS_TIMEOUT_MS = 20_000; // 20 seconds

/** How long closing waits for MCP connections (the SDK stops a stdio child within 4 s: stdin end, SIGTERM, SIGKILL). */
export const MCP_CLOSE_TIMEOUT_MS = 5_000; // 5 seconds

/** Bytes of one ACP message (one NDJSON line) read from the client; a bigger one closes the connection. */
export const ACP_MESSAGE_BYTES_MAX = 8 * 1024 * 1024; // 8 MiB

/** Sessions one `loom acp` connection has open (each holds a lease, a tail and a live actor). */
export const ACP_SESSIONS_MAX = 64;

/**
 * Updates `session/load` replays from a session's log; a longer history is replayed from its end
 * (the newest updates), after a notice saying how many were left out.
 */
export const ACP_REPLAY_UPDATES_MAX = 10_000;
// ---- model catalog and provider plugins (issue 8, catalog) -------------------------------------

/**
 * Longest a provider plugin may take to load (find its credentials, build its adapter, list its
 * models). Loading runs in the background; past this the provider is reported failed and a
 * session naming it gets that error instead of waiting forever.
 */
export const PROVIDER_LOAD_TIMEOUT_MS = 10_000; // 10 seconds

/** Provider ids one process loads (config entries plus providers found in the environment). */
export const PROVIDERS_MAX = 64;

/** Characters of a provider's load error kept in `provider.loaded` and status views (errors can quote long responses). */
export const PROVIDER_ERROR_CHARS_MAX = 500;

/** Entries in the model catalog of one process, from every source together; a registration past it is refused. */
export const CATALOG_MODELS_MAX = 5_000;

/** Models registered with `loom models add` / `POST /models` (the `models` table); past it an add is refused. */
export const MODELS_REGISTERED_MAX = 1_000;

/** Characters of a model id (`provider/model`): ids are path segments, subjects and table keys. */
export const MODEL_ID_CHARS_MAX = 200;

/** Characters of a model's display name. */
export const MODEL_NAME_CHARS_MAX = 200;

/** Largest context window or output limit a catalog entry may state, in tokens (far above any model; catches typos). */
export const MODEL_TOKENS_MAX = 100_000_000;

/** Largest price per million tokens a catalog entry may state, in US dollars (catches a price typed per token or in cents). */
export const MODEL_COST_PER_MTOK_MAX = 100_000;

/** System events one follower read takes from the log (the runtime follows it for changes made by other processes). */
export const SYSTEM_FOLLOW_PAGE_EVENTS = 200;

/** System events the inspector's System panel keeps (older rows are dropped). */
export const INSPECTOR_SYSTEM_ROWS_MAX = 50;

/** System events `GET /events/system` returns in one page. */
export const HTTP_SYSTEM_EVENTS_PAGE_MAX = 500;
// ---- retries and budgets (issue 8, loop) -------------------------------------------------------

/**
 * Share of an exponential backoff taken away at random ("equal jitter"): the delay before retry n
 * is uniform in [(1 - ratio) × base(n), base(n)], so sessions failing together do not retry in
 * step while the delays still grow (base doubles, so retry n + 1 never waits less than retry n).
 */
export const ATTEMPT_RETRY_JITTER_RATIO = 0.5;

/**
 * The longest `retry-after` (or `retry-after-ms`) a provider may ask for and still be waited out
 * inside a run. Asked for more, the activity settles `failed` naming the delay at once, instead of
 * holding the session (and a `loom run` terminal) for minutes or hours.
 */
export const ATTEMPT_RETRY_AFTER_MAX_MS = 120_000; // 2 minutes

/** Largest token budget a config, flag or request may set (per activity or per session). */
export const BUDGET_TOKENS_MAX = 1_000_000_000_000;

/** Largest cost budget in US dollars a config, flag or request may set. */
export const BUDGET_COST_USD_MAX = 1_000_000;
// ---- agents, instructions and compaction (issue 9, context management) ------------------------

/** Characters of an agent profile's name (`build`, `plan`, a config key under `agents`). */
export const AGENT_NAME_CHARS_MAX = 64;

/** Custom profiles one config may define: each is listed in errors and `--help`-style messages. */
export const AGENTS_MAX = 64;

/** Characters of a custom profile's own prompt (it goes into every request's system prompt). */
export const AGENT_PROMPT_CHARS_MAX = 32 * 1024;

/** Characters of a custom profile's description (shown when an unknown name lists the others). */
export const AGENT_DESCRIPTION_CHARS_MAX = 500;

/** Tool switches (`tools: { name: boolean }`) one profile may list. */
export const AGENT_TOOL_SWITCHES_MAX = 256;

/**
 * Bytes read of one instruction file (AGENTS.md, CLAUDE.md): a bigger file is cut here with a note,
 * so one huge file cannot fill the model's window or this process's memory.
 */
export const INSTRUCTION_FILE_BYTES_MAX = 64 * 1024; // 64 KiB

/** Instruction files taken into one system prompt (the global one included); the nearest win. */
export const INSTRUCTION_FILES_MAX = 8;

/**
 * Bytes of all instruction files together in one system prompt: past it, farther files are left
 * out (named in a note), nearer ones kept.
 */
export const INSTRUCTION_TOTAL_BYTES_MAX = 128 * 1024; // 128 KiB

/** Directories walked upwards from the session's directory looking for instruction files and `.git`. */
export const INSTRUCTION_DIRS_MAX = 64;

/**
 * Fraction of the model's context window at which the estimated next request triggers an
 * automatic compaction (config `compaction.threshold`). Leaves room for the answer and for the
 * estimate being rough (characters / 4).
 */
export const COMPACTION_THRESHOLD_DEFAULT = 0.8;

/** The lowest and highest `compaction.threshold` a config may set. */
export const COMPACTION_THRESHOLD_MIN = 0.1;
export const COMPACTION_THRESHOLD_MAX = 0.98;

/**
 * Most recent turns (assistant rounds, with their tool results and the prompts before them) kept
 * verbatim after a compaction (config `compaction.keepRecentTurns`): the model keeps the exact
 * text of what it is working on.
 */
export const COMPACTION_KEEP_RECENT_TURNS_DEFAULT = 2;

/** Largest `compaction.keepRecentTurns`. */
export const COMPACTION_KEEP_RECENT_TURNS_MAX = 100;

/**
 * The context window assumed when the model catalog does not know the session's model (config
 * `compaction.fallbackWindowTokens`). Tokens. Small enough to be safe for most current models.
 */
export const COMPACTION_FALLBACK_WINDOW_TOKENS = 128_000;

/** The smallest and largest `compaction.fallbackWindowTokens` a config may set. Tokens. */
export const COMPACTION_WINDOW_TOKENS_MIN = 1_000;
export const COMPACTION_WINDOW_TOKENS_MAX = 10_000_000;

/** Characters per token of the estimate (a rough rule for English text and code). */
export const COMPACTION_CHARS_PER_TOKEN = 4;

/**
 * Characters of the transcript a summary request sends, at most; when the covered conversation
 * is longer, its oldest part is left out (said in the transcript). The bound is also kept under
 * half of the model's window (in characters), so the summary request itself never overflows.
 */
export const COMPACTION_TRANSCRIPT_CHARS_MAX = 400_000;

/** Characters of one tool result in a summary transcript (head and tail kept, the middle cut). */
export const COMPACTION_TOOL_OUTPUT_CHARS_MAX = 4_000;

/** Characters of a summary kept in `compaction.finished` (well under EVENT_DATA_BYTES_MAX). */
export const COMPACTION_SUMMARY_CHARS_MAX = 64 * 1024;

/** `max_tokens` of a summary request: a summary longer than this is not a summary. Tokens. */
export const COMPACTION_SUMMARY_TOKENS_MAX = 8_192;

/**
 * Times one compaction is started again after its process was lost mid-summary; then it is
 * recorded failed (a summary request that kills its process must not loop).
 */
export const COMPACTION_RESTARTS_MAX = 3;

/** Characters of a compaction failure's reason kept in `compaction.failed`. */
export const COMPACTION_REASON_CHARS_MAX = 2_000;
// ---- file checkpoints, diff and undo (issue 9) -------------------------------------------------

/**
 * Bytes of one file's content a checkpoint keeps (the prior content before `write`/`edit`, and the
 * content after). As large as EDIT_FILE_BYTES_MAX so every file `edit` can change is captured
 * exactly; a larger file is recorded as changed with its content "not captured".
 */
export const CHECKPOINT_FILE_BYTES_MAX = 10 * 1024 * 1024; // 10 MiB

/**
 * Entries (files and directories) the stat scan around a `bash` command visits. Past it the scan
 * stops and the checkpoint says that the command's changes were not fully captured. Each entry
 * costs one lstat per scan, twice per command.
 */
export const CHECKPOINT_SCAN_ENTRIES_MAX = 20_000;

/** Directory levels the scan descends (each open level holds one descriptor). */
export const CHECKPOINT_SCAN_DEPTH_MAX = 32;

/**
 * Bytes of file content a scan keeps before a `bash` command (the sum over the files it sees,
 * content-addressed, so unchanged files are not written again). Past it, files are still
 * stat-tracked (a change is seen) but their prior content is not kept: undo cannot restore them
 * and the diff says so.
 */
export const CHECKPOINT_SCAN_BYTES_MAX = 64 * 1024 * 1024; // 64 MiB

/**
 * Bytes of one file whose content the bash scan keeps. Smaller than CHECKPOINT_FILE_BYTES_MAX:
 * every scan reads new files whole, and large files in a tree are mostly assets and data.
 */
export const CHECKPOINT_SCAN_FILE_BYTES_MAX = 2 * 1024 * 1024; // 2 MiB

/** Bytes of one `.gitignore` (or `.git/info/exclude`) file the scan reads; the rest is ignored. */
export const CHECKPOINT_IGNORE_FILE_BYTES_MAX = 256 * 1024; // 256 KiB

/** Parent directories searched for the repository root whose ignore rules also apply. */
export const CHECKPOINT_IGNORE_ANCESTORS_MAX = 32;

/**
 * Session directories whose last scan (path → stat and content hash) a process remembers, so a
 * command's scan reads only files that changed since. Least recently used forgotten first.
 */
export const CHECKPOINT_SCAN_CACHE_LOCATIONS_MAX = 16;

/** Files recorded in one `checkpoint.recorded` event; a command that changed more is recorded incomplete. */
export const CHECKPOINT_EVENT_FILES_MAX = 2_000;

/**
 * Bytes of the file list of one `checkpoint.recorded` or `checkpoint.restored` event (as JSON),
 * well under EVENT_DATA_BYTES_MAX: files past it are counted as omitted (a record) or the restore
 * is refused as too large for one step.
 */
export const CHECKPOINT_EVENT_BYTES_MAX = 1024 * 1024; // 1 MiB

/** Characters of a path in a checkpoint (longer paths are not recorded; PATH_MAX is 4096 bytes). */
export const CHECKPOINT_PATH_CHARS_MAX = 4_096;

/** Characters of a reason saying why a capture is incomplete. */
export const CHECKPOINT_REASON_CHARS_MAX = 500;

/**
 * How long recording a call's checkpoint waits for the tool itself to finish after the call was
 * settled early (cancelled or timed out while the tool still ran): tools honour their signal, so
 * this only covers stopping a process group (bash: PROCESS_KILL_GRACE_MS and the exit waits).
 */
export const CHECKPOINT_LATE_WAIT_MS = 30_000; // 30 seconds

/**
 * Finished calls whose checkpoint waits for its settlement to be recorded. Entries are taken at
 * once by the settlement; this bounds what a session stopped in between leaves behind.
 */
export const CHECKPOINT_PENDING_CALLS_MAX = 1_000;

/** Checkpoint records (calls and restores) one diff, undo or fork restore reads for a session. */
export const CHECKPOINT_RECORDS_READ_MAX = 100_000;

/**
 * Time one file's unified diff may take (jsdiff's `timeout`); a pathological pair of files is then
 * summarised by size instead of blocking the command.
 */
export const CHECKPOINT_DIFF_TIMEOUT_MS = 2_000; // 2 seconds

/** Bytes looked at to tell a binary file (a NUL byte, or invalid UTF-8) from text. */
export const CHECKPOINT_BINARY_SNIFF_BYTES = 8 * 1024; // 8 KiB

/** Default for `checkpoints.retentionDays`: checkpoints older than this lose their kept content. */
export const CHECKPOINT_RETENTION_DAYS_DEFAULT = 30;

/** Default for `checkpoints.maxBytes`: kept content beyond this expires, oldest checkpoints first. */
export const CHECKPOINT_STORE_BYTES_DEFAULT = 2 * 1024 * 1024 * 1024; // 2 GiB

/** Largest `checkpoints.maxBytes` a config may set. */
export const CONFIG_CHECKPOINT_STORE_BYTES_MAX = 1024 * 1024 * 1024 * 1024; // 1 TiB

/**
 * A kept blob no checkpoint refers to yet is not pruned before this age: it may belong to a scan
 * whose command is still running (bash foreground commands last at most BASH_TIMEOUT_MAX_MS).
 */
export const CHECKPOINT_BLOB_GRACE_MS = 24 * 60 * 60_000; // 1 day

/** Blob files one prune pass looks at; the rest wait for the next pass. */
export const CHECKPOINT_PRUNE_BLOBS_PER_PASS_MAX = 200_000;

/**
 * Every bound in Loom, in one place. Names put the qualifier last (`*_MAX`, `*_MS`); each comment
 * says why the number is what it is. A bound that is reached is handled explicitly: the caller
 * rejects, truncates or applies the strategy named beside the bound.
 */

// ---- store -------------------------------------------------------------------------------------

/** Busy timeout for SQLite locks. Write transactions are short, so a wait this long means trouble. */
export const SQLITE_BUSY_TIMEOUT_MS = 5_000; // 5 seconds

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

/** Retries of one turn within a live process (only while the attempt has received no chunk). */
export const ATTEMPT_RETRIES_MAX = 3;

/** Base backoff between retries of an attempt (doubled each time, capped below). */
export const ATTEMPT_RETRY_BACKOFF_MS = 250;

/** Longest backoff between retries, also the cap applied to a provider's retry-after. */
export const ATTEMPT_RETRY_BACKOFF_MAX_MS = 30_000;

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

/** Output bytes of one tool result sent back to the model; the rest is cut with a notice. */
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

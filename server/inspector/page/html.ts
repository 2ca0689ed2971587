/**
 * The inspector page's HTML: a static skeleton the bundle (app.ts) fills in. It holds no data and
 * no token, so it is served without one; the page trades the `#token=…` fragment for the cookie.
 */
export const INSPECTOR_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>Loom inspector</title>
<link rel="stylesheet" href="/inspector/assets/app.css">
<script type="module" src="/inspector/assets/app.js"></script>
</head>
<body>
<header class="top">
  <h1>Loom inspector</h1>
  <span id="connection" class="connection" data-status="starting">starting…</span>
  <span id="notice" class="notice" role="status" aria-live="polite"></span>
</header>
<section id="signin" class="signin" hidden>
  <h2>Sign in</h2>
  <p>Open the URL <code>loom serve</code> printed (it ends in <code>#token=…</code>), or paste the token from <code>$LOOM_HOME/server-token</code>.</p>
  <form id="signin-form"><input id="signin-token" type="password" autocomplete="off" placeholder="token" aria-label="token"><button type="submit">Sign in</button></form>
</section>
<main id="main" class="layout" hidden>
  <div class="left">
  <aside class="sessions panel">
    <h2>Sessions</h2>
    <ul id="sessions" class="session-list"></ul>
    <details class="new-session">
      <summary>New session</summary>
      <form id="new-session">
        <label>Directory <input name="location" required placeholder="/path/to/project"></label>
        <label>Model <input name="model" placeholder="default"></label>
        <label>First input <textarea name="text" rows="3"></textarea></label>
        <button type="submit">Create</button>
      </form>
    </details>
  </aside>
  <section class="system panel" aria-label="System events">
    <h2>System <span id="system-count" class="meta"></span></h2>
    <ol id="system" class="system-list"></ol>
  </section>
  </div>
  <section id="session" class="session">
    <p id="empty" class="empty">Select a session.</p>
    <div id="detail" hidden>
      <div class="session-head panel">
        <div>
          <h2 id="session-title"></h2>
          <p id="session-meta" class="meta"></p>
        </div>
        <div class="controls">
          <button id="btn-run" type="button">Run</button>
          <button id="btn-wake" type="button">Wake</button>
          <button id="btn-cancel" type="button" class="danger">Cancel</button>
        </div>
      </div>
      <div class="grid">
        <section class="panel chart-panel">
          <h3>Statechart <span id="state-name" class="state-name"></span></h3>
          <div id="chart" class="chart"></div>
        </section>
        <div class="side">
          <section class="panel asks-panel">
            <h3>Permission asks</h3>
            <ul id="asks" class="asks"></ul>
            <p id="grants" class="meta"></p>
          </section>
          <section class="panel">
            <h3>Child actors</h3>
            <ul id="children" class="children"></ul>
            <h4>Background jobs</h4>
            <ul id="jobs" class="jobs"></ul>
          </section>
          <section class="panel">
            <h3>Inbox</h3>
            <ul id="inbox" class="inbox"></ul>
            <form id="input-form" class="input-form">
              <textarea name="text" rows="2" placeholder="Send an input…" aria-label="input text"></textarea>
              <select name="mode" aria-label="mode"><option value="">session policy</option><option value="steer">steer</option><option value="queue">queue</option></select>
              <button type="submit">Send</button>
            </form>
          </section>
          <section class="panel">
            <h3>Usage</h3>
            <dl id="usage" class="usage"></dl>
          </section>
          <section class="panel">
            <h3>Recovery</h3>
            <div id="recovery-controls" class="controls" hidden>
              <button id="btn-retry" type="button">Retry</button>
              <button id="btn-abandon" type="button" class="danger">Abandon</button>
            </div>
            <ul id="recovery" class="recovery"></ul>
          </section>
        </div>
      </div>
      <section class="panel timeline-panel">
        <h3>Timeline <span id="timeline-count" class="meta"></span></h3>
        <div class="timeline-filter">
          <input id="filter" type="search" placeholder="filter by type prefix: tool. permission. activity." aria-label="filter by event type prefix">
          <span class="chips" id="filter-chips"></span>
        </div>
        <ol id="timeline" class="timeline"></ol>
      </section>
    </div>
  </section>
</main>
</body>
</html>
`;

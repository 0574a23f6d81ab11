// The dashboard page (GET /): static markup; app-js.ts fills it from GET /dashboard/state.
// Real buttons and labelled inputs, so every control is reachable by keyboard.

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>shadowshift dashboard</title>
<link rel="stylesheet" href="/dashboard/app.css">
</head>
<body>
<a class="skip" href="#main">Skip to the job</a>
<header>
  <h1><span class="brand">shadowshift</span> <span id="command">job</span> <span id="state-badge" class="badge">loading</span></h1>
  <dl id="meta" class="meta"></dl>
</header>
<main id="main">
  <section id="access" aria-labelledby="access-h">
    <h2 id="access-h">Access</h2>
    <p id="access-state" role="status">Read-only: enter the job's control token to use the controls and see log lines.</p>
    <form id="token-form" autocomplete="off">
      <label for="token">Control token</label>
      <input id="token" name="token" type="password" autocomplete="off" spellcheck="false">
      <button type="submit" id="token-submit">Unlock controls</button>
      <button type="button" id="token-forget" hidden>Forget token</button>
    </form>
  </section>
  <section id="migrate" aria-labelledby="migrate-h" hidden>
    <h2 id="migrate-h">Migration</h2>
    <dl id="migrate-info" class="kv"></dl>
  </section>
  <section id="state-section" aria-labelledby="state-h">
    <h2 id="state-h">State</h2>
    <p id="state-line"></p>
    <p id="waiting" class="warn" hidden></p>
    <ol id="state-times" class="chips" aria-label="Time in each state so far"></ol>
  </section>
  <section id="progress-section" aria-labelledby="progress-h">
    <h2 id="progress-h">Progress</h2>
    <progress id="progress-bar" max="100" value="0" aria-labelledby="progress-text"></progress>
    <p id="progress-text" class="big"></p>
    <dl id="progress-info" class="kv"></dl>
  </section>
  <section id="charts" aria-labelledby="charts-h">
    <h2 id="charts-h">Over the job's life</h2>
    <p class="note">Shaded: the copy was throttled. <span id="resolution"></span></p>
    <div class="charts">
      <figure><figcaption id="c-rate-h">Rows per second</figcaption><svg id="c-rate" role="img" aria-labelledby="c-rate-h"></svg></figure>
      <figure><figcaption id="c-lag-h">Stream lag (s) and backlog (events)</figcaption><svg id="c-lag" role="img" aria-labelledby="c-lag-h"></svg></figure>
      <figure><figcaption id="c-replica-h">Replica lag (s)</figcaption><svg id="c-replica" role="img" aria-labelledby="c-replica-h"></svg></figure>
      <figure><figcaption id="c-chunk-h">Chunk duration (ms)</figcaption><svg id="c-chunk" role="img" aria-labelledby="c-chunk-h"></svg></figure>
    </div>
    <h3>Throttled intervals</h3>
    <ul id="throttles"></ul>
  </section>
  <section id="cutover-section" aria-labelledby="cutover-h">
    <h2 id="cutover-h">Cut-over</h2>
    <p id="postpone-state"></p>
    <table id="attempts"><caption>Attempts</caption><thead><tr><th scope="col">#</th><th scope="col">At</th><th scope="col">Writes locked</th><th scope="col">Outcome</th></tr></thead><tbody></tbody></table>
  </section>
  <section id="controls" aria-labelledby="controls-h">
    <h2 id="controls-h">Controls</h2>
    <p id="controls-note" class="note">The controls need the token: without it the job refuses them.</p>
    <div class="buttons" role="group" aria-label="Job controls">
      <button type="button" data-command="throttle">Throttle</button>
      <button type="button" data-command="unthrottle">Unthrottle</button>
      <button type="button" data-command="postpone">Postpone cut-over</button>
      <button type="button" data-command="unpostpone">Unpostpone</button>
      <button type="button" data-command="cutover">Cut over now</button>
      <button type="button" data-command="abort" class="danger">Abort</button>
    </div>
    <form id="set-form">
      <label for="set-name">Setting</label>
      <select id="set-name">
        <option>chunk-time</option><option>chunk-size</option><option>max-lag</option><option>max-load</option>
        <option>max-slot-lag</option><option>copy-snapshot-max</option><option>nice-ratio</option>
      </select>
      <label for="set-value">Value</label>
      <input id="set-value" type="text" spellcheck="false" placeholder="e.g. 500 or auto">
      <button type="submit">Set</button>
    </form>
    <p id="control-result" role="status" aria-live="polite"></p>
    <dl id="settings" class="kv"></dl>
  </section>
  <section id="logs" aria-labelledby="logs-h">
    <h2 id="logs-h">Recent log events</h2>
    <p id="logs-note" class="note">Log lines are shown with the token only: they can name other sessions' SQL.</p>
    <ol id="log-list" class="log" tabindex="0" aria-labelledby="logs-h"></ol>
  </section>
</main>
<footer><p id="updated" class="note" aria-live="off"></p></footer>
<script src="/dashboard/app.js"></script>
</body>
</html>
`;

// The dashboard's script (GET /dashboard/app.js): polls GET /dashboard/state once a second
// and draws it, charts as plain SVG; sends the controls with the token, which it keeps in
// memory only (never in the URL or storage). Plain ES5-style JS, no build step.

export const APP_JS = String.raw`
'use strict';
(function () {
  var token = null; // kept in memory only: never in the URL or storage
  var authNotice = ''; // why the page is read-only again (a refused token), shown until the next try
  var $ = function (id) { return document.getElementById(id); };
  var SVGNS = 'http://www.w3.org/2000/svg';
  var COLORS = ['#1f5fbf', '#c2410c', '#15803d', '#7c3aed', '#be185d', '#0e7490'];

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svgEl(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function fmtNum(n) { return n === null || n === undefined ? '-' : Math.round(n).toLocaleString('en-US'); }
  function fmtDur(s) {
    if (s === null || s === undefined) return '-';
    s = Math.max(0, Math.round(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? h + 'h ' + m + 'm' : m ? m + 'm ' + r + 's' : r + 's';
  }
  function fmtTime(ms) { return new Date(ms).toLocaleTimeString('en-GB'); }
  function kv(dl, pairs) {
    dl.textContent = '';
    pairs.forEach(function (p) { if (p[1] === undefined) return; dl.appendChild(el('dt', null, p[0])); dl.appendChild(el('dd', null, p[1])); });
  }
  // Only a real change is written, so a live region is not read out again every second.
  function setText(node, text) { if (node.textContent !== text) node.textContent = text; }
  function headers() { return token ? { Authorization: 'Bearer ' + token } : {}; }

  // ---- charts: plain SVG, one line per series, throttled intervals shaded ----
  function chart(svg, series, throttles, t0, t1, unit) {
    var w = svg.clientWidth || 600, h = svg.clientHeight || 170;
    var L = 48, R = 8, T = 8, B = 20;
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.textContent = '';
    var max = 0;
    series.forEach(function (s) { s.points.forEach(function (p) { if (p[1] !== null && p[1] > max) max = p[1]; }); });
    if (max <= 0) max = 1;
    max *= 1.1;
    var span = Math.max(1, t1 - t0);
    var x = function (t) { return L + ((t - t0) / span) * (w - L - R); };
    var y = function (v) { return T + (1 - v / max) * (h - T - B); };
    throttles.forEach(function (i) {
      var a = x(Math.max(t0, i.from)), b = x(i.to === null ? t1 : Math.min(t1, i.to));
      var r = svgEl('rect', { x: a, y: T, width: Math.max(2, b - a), height: h - T - B, class: 'shade' });
      var tt = svgEl('title', {}); tt.textContent = 'throttled: ' + i.reason; r.appendChild(tt);
      svg.appendChild(r);
    });
    for (var g = 0; g <= 2; g++) {
      var v = (max / 2) * g, yy = y(v);
      svg.appendChild(svgEl('line', { x1: L, x2: w - R, y1: yy, y2: yy, class: 'grid' }));
      var lab = svgEl('text', { x: L - 4, y: yy + 4, 'text-anchor': 'end' }); lab.textContent = v >= 100 ? fmtNum(v) : v.toFixed(v >= 10 ? 0 : 1); svg.appendChild(lab);
    }
    var l0 = svgEl('text', { x: L, y: h - 5 }); l0.textContent = fmtTime(t0); svg.appendChild(l0);
    var l1 = svgEl('text', { x: w - R, y: h - 5, 'text-anchor': 'end' }); l1.textContent = fmtTime(t1); svg.appendChild(l1);
    var summary = [];
    series.forEach(function (s, i) {
      var d = '', pen = false;
      s.points.forEach(function (p) {
        if (p[1] === null) { pen = false; return; }
        d += (pen ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1) + ' ';
        pen = true;
      });
      if (d) svg.appendChild(svgEl('path', { d: d, class: 'line', stroke: s.color || COLORS[i % COLORS.length] }));
      var last = null;
      for (var k = s.points.length - 1; k >= 0; k--) if (s.points[k][1] !== null) { last = s.points[k][1]; break; }
      summary.push(s.name + ' now ' + (last === null ? 'unknown' : (last >= 100 ? fmtNum(last) : last.toFixed(2))) + (unit ? ' ' + unit : ''));
    });
    if (!series.length) summary.push('no data');
    var desc = svgEl('desc', {}); desc.textContent = summary.join('; '); svg.insertBefore(desc, svg.firstChild);
    var fig = svg.parentNode, legend = fig.querySelector('.legend');
    if (!legend) { legend = el('div', { class: 'legend' }); fig.appendChild(legend); }
    legend.textContent = '';
    series.forEach(function (s, i) { var sp = el('span', null, summary[i]); sp.style.color = s.color || COLORS[i % COLORS.length]; legend.appendChild(sp); });
    if (!series.length) legend.appendChild(el('span', null, 'no data'));
  }

  function drawCharts(job, now) {
    var hist = job ? job.history : [];
    var t0 = job ? job.startedAt : now, t1 = hist.length ? Math.max(hist[hist.length - 1].t, t0 + 1000) : now;
    var thr = job ? job.throttles : [];
    var pts = function (f) { return hist.map(function (p) { return [p.t, f(p)]; }); };
    chart($('c-rate'), [{ name: 'rows/s', points: pts(function (p) { return p.rowsPerSecond; }) }], thr, t0, t1, '');
    var backlogMax = 0, lagMax = 0;
    hist.forEach(function (p) { backlogMax = Math.max(backlogMax, p.backlog); lagMax = Math.max(lagMax, p.lagSeconds || 0); });
    chart($('c-lag'), [
      { name: 'lag', points: pts(function (p) { return p.lagSeconds; }) },
      { name: 'backlog', color: '#c2410c', points: pts(function (p) { return backlogMax ? (p.backlog / backlogMax) * Math.max(lagMax, 1) : 0; }) },
    ], thr, t0, t1, '');
    // The backlog is drawn to the lag's scale; its legend gives the real number.
    var lg = $('c-lag').parentNode.querySelector('.legend span:nth-child(2)');
    if (lg && hist.length) lg.textContent = 'backlog now ' + fmtNum(hist[hist.length - 1].backlog) + ' events (peak ' + fmtNum(backlogMax) + ', scaled)';
    var names = {};
    hist.forEach(function (p) { for (var n in p.replicaLag) names[n] = true; });
    chart($('c-replica'), Object.keys(names).map(function (n) { return { name: n, points: pts(function (p) { var v = p.replicaLag[n]; return v === undefined ? null : v; }) }; }), thr, t0, t1, 's');
    if (!Object.keys(names).length) { var leg = $('c-replica').parentNode.querySelector('.legend'); if (leg) leg.textContent = 'no replicas watched (--throttle-replicas)'; }
    chart($('c-chunk'), [{ name: 'chunk', points: pts(function (p) { return p.chunkMs; }) }], thr, t0, t1, 'ms');
    $('resolution').textContent = job && job.resolutionSeconds > 1 ? 'One point per ' + job.resolutionSeconds + ' s (older history is kept coarser).' : '';
    var ul = $('throttles'); ul.textContent = '';
    if (!thr.length) ul.appendChild(el('li', null, 'never throttled'));
    thr.slice(-20).forEach(function (i) {
      ul.appendChild(el('li', null, fmtTime(i.from) + (i.to === null ? ' - now' : ' - ' + fmtTime(i.to)) + ' (' + fmtDur(((i.to === null ? now : i.to) - i.from) / 1000) + '): ' + i.reason));
    });
  }

  function render(v) {
    var s = v.status;
    $('command').textContent = v.command;
    var meta = v.meta || {};
    kv($('meta'), [['table', meta.table || (s && s.table) || '-'], ['ALTER', meta.alter || '-'], ['server', meta.server || meta.dialect || '-'], ['job', meta.jobId || (s && s.jobId) || '-']]);
    var badge = $('state-badge');
    var stateText = s ? s.state + (s.phase && s.phase !== s.state ? ' (' + s.phase.replace(/-/g, ' ') + ')' : '') : (v.migrate ? (v.migrate.finished ? 'finished' : 'running statements') : 'waiting');
    badge.textContent = s && s.throttled ? stateText + ', throttled' : stateText;
    badge.className = 'badge ' + (s ? s.state : '') + (s && s.throttled ? ' throttled' : '');
    $('state-line').textContent = s ? 'State: ' + stateText + (v.running ? '' : ' (the job has ended)') + (s.throttled ? '. Throttled: ' + s.throttled : '') + (s.error ? '. Error: ' + s.error : '') : 'No engine job is running.';
    var w = $('waiting');
    if (s && s.waitingFor) { w.hidden = false; w.textContent = 'Waiting for ' + s.waitingFor.what + ' for ' + fmtDur(s.waitingFor.seconds) + ': ' + s.waitingFor.detail + s.waitingFor.blockers.map(function (b) { return '; session ' + b.session + (b.user ? ' (' + b.user + ')' : '') + (b.query ? ': ' + b.query : ''); }).join(''); } else w.hidden = true;
    var times = $('state-times'); times.textContent = '';
    ((v.job && v.job.states) || []).forEach(function (x, i, all) { times.appendChild(el('li', i === all.length - 1 ? { class: 'current' } : null, x.state + ' ' + fmtDur(x.seconds))); });
    // progress
    var pct = s ? (s.rowsEstimated > 0 ? Math.min(100, (s.rowsCopied * 100) / s.rowsEstimated) : s.rowsCopied > 0 ? 100 : 0) : 0;
    $('progress-bar').value = pct;
    $('progress-text').textContent = s ? fmtNum(s.rowsCopied) + ' of ~' + fmtNum(s.rowsEstimated) + ' rows copied (' + pct.toFixed(1) + '%)' : '-';
    kv($('progress-info'), s ? [['rows/s', fmtNum(s.rowsPerSecond)], ['ETA', s.etaSeconds === null ? '-' : fmtDur(s.etaSeconds)], ['changes applied', fmtNum(s.eventsApplied)], ['backlog', fmtNum(s.backlog) + ' events'], ['stream lag', s.lagSeconds === null ? '-' : s.lagSeconds.toFixed(2) + ' s'], ['chunk size', fmtNum(s.chunkSize) + ' rows'], ['checksum repairs', String(s.repairedChunks)]] : []);
    drawCharts(v.job, v.now);
    // cut-over
    $('postpone-state').textContent = v.postponed === null ? '' : v.postponed ? 'The cut-over is postponed (flag file or postpone): it waits for "Cut over now" or unpostpone.' : 'The cut-over is not postponed: it starts once the copy is done and the stream caught up.';
    var tb = $('attempts').querySelector('tbody'); tb.textContent = '';
    var atts = (v.job && v.job.cutoverAttempts) || [];
    if (!atts.length) { var tr0 = el('tr'); tr0.appendChild(el('td', { colspan: '4' }, s ? s.cutoverAttempts + ' attempt(s) so far' : 'none yet')); tb.appendChild(tr0); }
    atts.forEach(function (a, i) { var tr = el('tr'); tr.appendChild(el('td', null, i + 1)); tr.appendChild(el('td', null, fmtTime(a.at))); tr.appendChild(el('td', null, a.lockedMs + ' ms')); tr.appendChild(el('td', null, a.result === 'ok' ? 'swapped' : 'failed, retried')); tb.appendChild(tr); });
    // migrate
    if (v.migrate) { $('migrate').hidden = false; kv($('migrate-info'), [['action', v.migrate.action], ['migration', v.migrate.migration || '-'], ['phase', v.migrate.phase || '-'], ['last step', v.migrate.lastLine || '-'], ['engine job', v.running ? 'running (below)' : 'none running']]); }
    // settings
    var st = v.settings;
    kv($('settings'), st ? [['chunk size', fmtNum(st.chunkSize)], ['max-lag', st.maxLagSeconds + ' s'], ['nice-ratio', String(st.niceRatio)], ['max-load', Object.keys(st.maxLoad).map(function (k) { return k + '=' + st.maxLoad[k]; }).join(', ') || '-']] : []);
    // access and logs
    setText($('access-state'), v.authorized ? 'Controls unlocked: the token is kept in this page only until you close it.' : authNotice + 'Read-only: enter the job\'s control token to use the controls and see log lines.');
    $('token-form').querySelector('#token-submit').hidden = v.authorized;
    $('token').parentNode.querySelector('label').hidden = v.authorized; $('token').hidden = v.authorized;
    $('token-forget').hidden = !v.authorized;
    setText($('controls-note'), v.authorized ? (v.running ? 'Each control acts on the running job at once.' : 'No engine job is running: the controls have nothing to steer now.') : 'Read-only: the controls need the token, without it the job refuses them.');
    var list = $('log-list'); list.textContent = '';
    $('logs-note').hidden = Boolean(v.logs);
    (v.logs || []).slice().reverse().forEach(function (l) {
      var fields = Object.keys(l.fields).filter(function (k) { return k !== 'status'; }).map(function (k) { return k + '=' + l.fields[k]; }).join(' ');
      list.appendChild(el('li', { class: l.level >= 50 ? 'error' : l.level >= 40 ? 'warn' : '' }, fmtTime(l.time) + ' ' + (l.level >= 50 ? 'ERROR ' : l.level >= 40 ? 'WARN ' : '') + l.msg + (fields ? '  ' + fields : '')));
    });
    $('updated').textContent = 'Updated ' + fmtTime(v.now);
  }

  var inFlight = false;
  function poll() {
    if (inFlight) return;
    inFlight = true;
    fetch('/dashboard/state', { headers: headers(), cache: 'no-store' }).then(function (r) {
      if (r.status === 401 && token) { token = null; authNotice = 'The token was refused. '; return null; }
      return r.ok ? r.json() : null;
    }).then(function (v) { if (v) render(v); }).catch(function () { $('updated').textContent = 'The job is not answering (it may have ended).'; }).then(function () { inFlight = false; });
  }

  function send(command, setting) {
    var out = $('control-result');
    var h = headers(); h['Content-Type'] = 'application/json';
    return fetch('/' + command, { method: 'POST', headers: h, body: setting === undefined ? '' : JSON.stringify({ setting: setting }) }).then(function (r) {
      return r.json().then(function (b) {
        out.className = b.ok ? 'accepted' : 'refused';
        out.textContent = b.ok ? command + ': ' + (b.message || 'done') : command + ' refused: ' + b.error;
        poll();
      });
    }).catch(function (e) { out.className = 'refused'; out.textContent = command + ' failed: ' + e.message; });
  }

  $('token-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var given = $('token').value.trim();
    $('token').value = '';
    if (!given) return;
    fetch('/dashboard/state', { headers: { Authorization: 'Bearer ' + given }, cache: 'no-store' }).then(function (r) {
      authNotice = r.ok ? '' : 'That token was refused. ';
      if (r.ok) token = given;
      poll();
    });
  });
  $('token-forget').addEventListener('click', function () { token = null; poll(); $('token').focus(); });
  Array.prototype.forEach.call(document.querySelectorAll('button[data-command]'), function (b) {
    b.addEventListener('click', function () {
      var c = b.getAttribute('data-command');
      if (c === 'abort' && !window.confirm('Abort the job? It stops, drops what it made and exits non-zero; the table is left as it was.')) return;
      if (c === 'cutover' && !window.confirm('Cut over as soon as the copy is done and the stream caught up, even if postponed?')) return;
      send(c);
    });
  });
  $('set-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    send('set', $('set-name').value + '=' + $('set-value').value.trim());
  });
  poll();
  setInterval(poll, 1000);
})();
`;

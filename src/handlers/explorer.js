'use strict';
// The dashboard's Requests view (inlined into the page after the overview's script, whose
// helpers it borrows through window.__dashboard): the recent interactions from
// /admin/interactions, filtered and paged, and one request's whole record from
// /admin/interactions/<id>. Views are chosen by the hash: #/requests?model=…&status=… (the
// list with its filters) and #/requests/<id> (one request, a link that can be shared).
// Everything from the server is written as text (textContent, setAttribute), never as markup.
(function () {
  var D = window.__dashboard, ROOT = window.__gatewayRoot, el = D.el, num = D.num;
  var FILTERS = ['model', 'provider', 'status', 'route', 'since', 'until', 'q'];
  var BODIES = ['client_request', 'downstream_request', 'downstream_response'];
  // The record's fields in the log line's reading order; fields not named here follow.
  var ORDER = ['timestamp', 'request_id', 'method', 'route', 'key_name', 'team', 'client', 'model_requested', 'model', 'provider', 'api_base', 'stream',
    'http_status', 'status', 'error', 'processing_time', 'upstream_latency', 'time_to_first_token', 'gateway_overhead_ms', 'queue_wait_ms',
    'usage', 'usage_source', 'cost_usd', 'dropped_params'];
  var state = { filters: {}, cursors: [], cursor: null, next: null, timer: null };
  var $ = function (sel) { return document.querySelector(sel); };
  var text = function (v) { return v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v); };

  // ---- the hash: '' (overview), #/requests?…, #/requests/<id>
  function parseHash() {
    var h = location.hash;
    if (!/^#\/requests/.test(h)) return { view: 'overview' };
    var rest = h.slice('#/requests'.length), q = '';
    var at = rest.indexOf('?');
    if (at >= 0) { q = rest.slice(at + 1); rest = rest.slice(0, at); }
    var filters = {};
    q.split('&').forEach(function (kv) {
      var p = kv.split('='); if (!p[0]) return;
      try { filters[decodeURIComponent(p[0])] = decodeURIComponent(p.slice(1).join('=')); } catch (e) { /* a mangled link: ignore that filter */ }
    });
    if (rest.length > 1 && rest[0] === '/') {
      var id = rest.slice(1);
      try { id = decodeURIComponent(id); } catch (e) { /* keep it as written */ }
      return { view: 'detail', id: id, filters: filters };
    }
    return { view: 'list', filters: filters };
  }
  function filtersQuery(filters) {
    return FILTERS.filter(function (k) { return filters[k]; }).map(function (k) { return k + '=' + encodeURIComponent(filters[k]); }).join('&');
  }

  function show(route) {
    var overview = route.view === 'overview';
    $('#overview-view').hidden = !overview;
    $('#requests-view').hidden = route.view !== 'list';
    $('#request-detail').hidden = route.view !== 'detail';
    $('#tab-overview').setAttribute('aria-current', overview ? 'page' : 'false');
    $('#tab-requests').setAttribute('aria-current', overview ? 'false' : 'page');
    clearTimeout(state.timer);
    if (overview) { D.renderCharts(); return; }
    if (route.view === 'list') {
      state.filters = route.filters; state.cursors = []; state.cursor = null;
      fillForm(); loadList();
    } else loadDetail(route.id);
  }
  window.addEventListener('hashchange', function () { show(parseHash()); });

  // ---- the list
  function fillForm() {
    var form = $('#request-filters');
    FILTERS.forEach(function (k) {
      var v = state.filters[k] || '';
      if (k === 'since' || k === 'until') v = v && !isNaN(Number(v)) ? localInput(Number(v)) : '';
      form.elements[k].value = v;
    });
  }
  function localInput(unix) {
    var d = new Date(unix * 1000), p = function (n) { return (n < 10 ? '0' : '') + n; };
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
  }
  $('#request-filters').addEventListener('submit', function (e) {
    e.preventDefault();
    var form = e.target, filters = {};
    FILTERS.forEach(function (k) {
      var v = form.elements[k].value.trim();
      if (v && (k === 'since' || k === 'until')) v = String(Math.floor(new Date(v).getTime() / 1000));
      if (v && v !== 'NaN') filters[k] = v;
    });
    var q = filtersQuery(filters);
    location.hash = '#/requests' + (q ? '?' + q : '');
  });
  $('#filters-clear').addEventListener('click', function () { location.hash = '#/requests'; });
  $('#page-older').addEventListener('click', function () {
    if (!state.next) return;
    state.cursors.push(state.cursor); state.cursor = state.next; loadList();
  });
  $('#page-newest').addEventListener('click', function () { state.cursors = []; state.cursor = null; loadList(); });

  function loadList() {
    clearTimeout(state.timer);
    var q = filtersQuery(state.filters);
    if (state.cursor) q += (q ? '&' : '') + 'cursor=' + encodeURIComponent(state.cursor);
    D.fetchJson(ROOT + 'admin/interactions' + (q ? '?' + q : '')).then(renderList, function (e) {
      renderList(null, e.message);
    }).catch(function (e) { console.error('requests view failed:', e && e.stack || e); });
  }

  var COLUMNS = [
    ['Time', function (r) { return clock(r.timestamp); }, function (r) { return text(r.timestamp); }],
    ['Request id', function (r) { return text(r.request_id); }, null, 'id'],
    ['Route', function (r) { return text(r.route); }],
    ['Model', function (r) { return text(r.model_requested); }, function (r) { return r.model ? 'sent as ' + r.provider + '/' + r.model : null; }, 'model'],
    ['Provider', function (r) { return text(r.provider); }],
    ['Status', function (r) { return el('span', { class: 'pill ' + text(r.status) }, [text(r.status) + ' ' + text(r.http_status)]); }, function (r) { return D.get(r, ['error', 'message']); }],
    ['Latency', function (r) { return D.fmtSeconds(r.processing_time); }, null, 'n'],
    ['TTFT', function (r) { return D.fmtSeconds(r.time_to_first_token); }, null, 'n'],
    ['Tokens', function (r) { return D.fmtCount(D.get(r, ['usage', 'total_tokens'])); }, function (r) { return r.usage_source === 'estimated' ? 'estimated' : null; }, 'n'],
    ['Cost', function (r) { return D.fmtUsd(r.cost_usd); }, null, 'n']
  ];
  var KEY_COLUMN = ['Key', function (r) { return text(r.key_name); }, function (r) { return r.team ? 'team ' + r.team : null; }];
  function clock(ts) {
    var d = new Date(typeof ts === 'string' ? ts : NaN);
    return isNaN(d.getTime()) ? text(ts) : d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function renderList(page, problem) {
    var rows = page && Array.isArray(page.data) ? page.data.filter(function (r) { return r && typeof r === 'object'; }) : [];
    var columns = COLUMNS.slice();
    if (rows.some(function (r) { return r.key_name !== null && r.key_name !== undefined; })) columns.splice(2, 0, KEY_COLUMN);
    var head = $('#requests-head'); head.textContent = '';
    columns.forEach(function (c) { head.appendChild(el('th', { class: c[3] === 'n' ? 'n' : null }, [c[0]])); });
    var body = $('#requests-body'); body.textContent = '';
    rows.forEach(function (r) {
      var id = text(r.request_id);
      var tr = el('tr', { 'data-testid': 'request-row', 'data-id': id, 'data-model': text(r.model_requested), 'data-status': text(r.status), 'data-http-status': text(r.http_status), 'data-key': r.key_name == null ? null : text(r.key_name), title: 'Show request ' + id });
      columns.forEach(function (c) {
        var v = c[1](r), title = c[2] ? c[2](r) : null;
        tr.appendChild(el('td', { class: c[3] || null, title: title }, [v]));
      });
      tr.addEventListener('click', function () { location.hash = '#/requests/' + encodeURIComponent(id); });
      body.appendChild(tr);
    });
    var empty = $('#requests-empty');
    empty.hidden = rows.length > 0;
    empty.textContent = problem ? 'Could not load the requests: ' + problem
      : filtersQuery(state.filters) ? 'No request matches these filters.' : 'No requests yet. Send one to /v1/chat/completions (try the model mock/echo) and it shows up here.';
    state.next = page ? page.next_cursor || null : null;
    $('#page-older').disabled = !state.next;
    $('#page-newest').disabled = !state.cursor;
    var source = '';
    if (page) {
      source = D.fmtCount(rows.length) + ' shown · ' + D.fmtCount(D.get(page, ['recent', 'held'])) + ' of the last ' + D.fmtCount(D.get(page, ['recent', 'capacity'])) + ' held in memory';
      var read = num(D.get(page, ['scan', 'bytes_read']));
      if (read) source += ' · ' + (read < 1048576 ? D.fmtCount(read / 1024) + ' KB' : D.fmtCount(read / 1048576) + ' MB') + ' of log files read';
    }
    $('#requests-source').textContent = source;
    $('#requests-view').setAttribute('data-loaded', page ? 'true' : 'false');
    // The first page follows new traffic; older pages stay as they are.
    if (!state.cursor && !$('#requests-view').hidden) state.timer = setTimeout(function () { if (!document.hidden) loadList(); }, 5000);
  }

  // ---- one request
  function loadDetail(id) {
    var box = $('#request-detail');
    box.textContent = ''; box.setAttribute('data-loaded', 'false');
    box.appendChild(el('div', { class: 'muted' }, ['Loading ' + id + '…']));
    D.fetchJson(ROOT + 'admin/interactions/' + encodeURIComponent(id)).then(function (record) {
      renderDetail(record);
    }, function (e) {
      box.textContent = '';
      box.appendChild(back());
      box.appendChild(el('div', { class: 'empty', 'data-testid': 'detail-missing' }, ['Could not load request ' + id + ': ' + e.message]));
      box.setAttribute('data-loaded', 'true');
    }).catch(function (e) { console.error('request view failed:', e && e.stack || e); });
  }
  function back() {
    var q = filtersQuery(parseHash().filters || {});
    return el('a', { href: '#/requests' + (q ? '?' + q : ''), 'data-testid': 'detail-back' }, ['← all requests']);
  }

  function renderDetail(r) {
    var box = $('#request-detail'); box.textContent = '';
    box.appendChild(back());
    box.appendChild(el('div', { class: 'panel-head' }, [
      el('h2', { 'data-testid': 'detail-id' }, [text(r.request_id)]),
      el('span', { class: 'pill ' + text(r.status), 'data-testid': 'detail-status' }, [text(r.status) + ' ' + text(r.http_status)])
    ]));
    timing(box, r);
    var message = D.get(r, ['error', 'message']);
    if (message !== null) box.appendChild(el('div', { class: 'banner', 'data-testid': 'detail-error' }, [String(message)]));
    // Every field but the bodies, whatever fields the record has.
    box.appendChild(el('h3', {}, ['Record']));
    var table = el('table', { class: 'fields', 'data-testid': 'detail-fields' });
    var tbody = el('tbody');
    var rank = function (k) { var i = ORDER.indexOf(k); return i < 0 ? ORDER.length : i; };
    Object.keys(r).filter(function (k) { return BODIES.indexOf(k) < 0 && k !== 'attempts'; }).sort(function (a, b) { return rank(a) - rank(b); }).forEach(function (k) {
      var v = r[k];
      tbody.appendChild(el('tr', { 'data-testid': 'detail-field', 'data-key': k }, [el('td', {}, [k]), el('td', {}, [text(v)])]));
    });
    table.appendChild(tbody); box.appendChild(table);
    if (Array.isArray(r.attempts) && r.attempts.length) {
      box.appendChild(el('h3', {}, ['Attempts']));
      var at = el('table', { 'data-testid': 'detail-attempts' });
      at.appendChild(el('thead', {}, [el('tr', {}, ['Deployment', 'Base', 'Status', 'Latency', 'Error'].map(function (h) { return el('th', {}, [h]); }))]));
      var ab = el('tbody');
      r.attempts.forEach(function (a) {
        a = a && typeof a === 'object' ? a : {};
        ab.appendChild(el('tr', {}, [text(a.deployment), text(a.api_base), text(a.status), num(a.latency_ms) === null ? '—' : D.fmtSeconds(a.latency_ms / 1000), text(a.error)].map(function (c) { return el('td', {}, [c]); })));
      });
      at.appendChild(ab); box.appendChild(at);
    }
    var chunks = D.get(r, ['downstream_response', 'chunks']);
    [['client_request', 'Client request (as the client sent it)'], ['downstream_request', 'Request sent to the provider'],
      ['downstream_response', r.stream ? 'Reassembled stream' + (chunks !== null ? ' · ' + chunks + ' chunks' : '') : 'Response from the provider']].forEach(function (b) {
      if (r[b[0]] === null || r[b[0]] === undefined) return;
      box.appendChild(el('h3', {}, [b[1]]));
      box.appendChild(el('pre', { 'data-testid': 'detail-' + b[0].replace('_', '-') }, [JSON.stringify(r[b[0]], null, 2)]));
    });
    curl(box, r);
    box.setAttribute('data-loaded', 'true');
  }

  // received → (queued before) → gateway → provider → first token → end
  function timing(box, r) {
    var ms = function (s) { s = num(s); return s === null ? null : s * 1000; };
    var total = ms(r.processing_time) || 0, upstream = ms(r.upstream_latency) || 0, ttft = ms(r.time_to_first_token);
    var overhead = num(r.gateway_overhead_ms);
    if (overhead === null) overhead = Math.max(0, total - upstream);
    var first = r.stream && ttft !== null ? Math.max(0, ttft - overhead - upstream) : 0;
    var rest = Math.max(0, total - overhead - upstream - first);
    var parts = [['queue', 'queued for a worker', num(r.queue_wait_ms) || 0], ['gateway', 'in the gateway', overhead],
      ['provider', r.stream ? 'provider, to its response head' : 'waiting for the provider', upstream],
      ['first', 'to the first token', first], ['rest', r.stream ? 'streaming to the end' : 'to the end', rest]];
    box.appendChild(el('h3', {}, ['Timing · ' + D.fmtSeconds(total / 1000) + (ttft !== null ? ' · first token at ' + D.fmtSeconds(ttft / 1000) : '')]));
    var bar = el('div', { class: 'timing', 'data-testid': 'detail-timing' });
    var legend = el('div', { class: 'timing-legend' });
    parts.forEach(function (p) {
      if (!(p[2] > 0)) return;
      var label = p[1] + ' ' + D.fmtSeconds(p[2] / 1000);
      bar.appendChild(el('div', { class: 't-' + p[0], style: 'flex-grow:' + p[2].toFixed(4), title: label, 'data-testid': 'timing-' + p[0], 'data-ms': p[2].toFixed(3) }));
      legend.appendChild(el('span', {}, [el('i', { class: 't-' + p[0] }), label]));
    });
    box.appendChild(bar); box.appendChild(legend);
  }

  // A command that sends the same request to this gateway again, the key a placeholder.
  function curl(box, r) {
    var body = r.client_request !== null && r.client_request !== undefined ? r.client_request : r.downstream_request;
    box.appendChild(el('h3', {}, ['Replay with curl']));
    var note = null;
    if (body === null || body === undefined) note = 'No body was logged (LOG_BODIES=metadata), so there is nothing to replay.';
    else if (body && body.truncated === true) note = 'The logged body was truncated (LOG_BODIES=truncated, LOG_MAX_BODY_BYTES), so it cannot be replayed.';
    if (note) { box.appendChild(el('div', { class: 'muted', 'data-testid': 'detail-curl-missing' }, [note])); return; }
    if (r.client_request == null && r.provider && r.provider !== 'mock') {
      box.appendChild(el('div', { class: 'muted' }, ['The body below is the one sent to the provider (' + r.provider + '), which may differ from what the client sent.']));
    }
    var quote = function (s) { return "'" + String(s).replace(/'/g, "'\\''") + "'"; };
    var route = typeof r.route === 'string' ? r.route : '/v1/chat/completions';
    var anthropic = /\/messages(\/|$|\?)/.test(route);
    var lines = ['curl' + (body && body.stream === true ? ' -N' : '') + ' ' + quote(location.origin + ROOT.replace(/\/$/, '') + route),
      anthropic ? '  -H "x-api-key: $LLMCALLGATEWAY_KEY" -H \'anthropic-version: 2023-06-01\'' : '  -H "Authorization: Bearer $LLMCALLGATEWAY_KEY"',
      "  -H 'Content-Type: application/json'",
      '  -d ' + quote(typeof body === 'string' ? body : JSON.stringify(body))];
    var command = lines.join(' \\\n');
    box.appendChild(el('pre', { 'data-testid': 'detail-curl' }, [command]));
    var button = el('button', { type: 'button', class: 'copy' }, ['Copy']);
    button.addEventListener('click', function () {
      var done = function () { button.textContent = 'Copied'; };
      if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(command).then(done, function () { button.textContent = 'Select the text to copy'; });
    });
    box.appendChild(el('div', { class: 'pager' }, [button]));
  }

  show(parseHash());
})();

// Lab gateway status page. Plain browser JavaScript, no framework, no CDN.
// Every value from the gateway is inserted as text (textContent), never as HTML.
'use strict';

(() => {
  const POLL_MS = 2000;
  /** A request the gateway has not answered in this long is given up (a hung gateway looks offline). */
  const REQUEST_TIMEOUT_MS = 10_000;
  const TOKEN_KEY = 'labGatewayAdminToken';
  /** The name of the token this tab signed in with (status.adminTokenFile `<name> <token>`), kept beside it. */
  const NAME_KEY = 'labGatewayAdminName';
  const $ = (id) => document.getElementById(id);

  /** Create an element with attributes and children (strings become text nodes). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c));
    return node;
  }

  /**
   * The gateway's clock minus this PC's (ms), from the last status's generatedAt. Times from the
   * gateway are compared with the gateway's "now", so a PC whose clock is off still reads
   * "5 s ago" for something that just happened.
   */
  let clockOffsetMs = 0;
  const gatewayNow = () => Date.now() + clockOffsetMs;

  function ago(iso) {
    if (!iso) return 'never';
    const s = Math.max(0, Math.round((gatewayNow() - Date.parse(iso)) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return new Date(iso).toLocaleString();
  }

  function duration(seconds) {
    if (!seconds) return 'none waiting';
    if (seconds < 60) return `${Math.round(seconds)} s`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function bytes(n) {
    if (n === null || n === undefined) return '—';
    const gb = n / 1024 ** 3;
    return gb >= 1 ? `${gb.toFixed(1)} GB` : `${Math.round(n / 1024 ** 2)} MB`;
  }

  /**
   * Call before a re-render that may move the focused input to a new parent, and call what it returns
   * after. Moving a node blurs it, so the keys typed next would go nowhere; focus and caret come back
   * in the same task, before any key is handled.
   */
  function holdFocus() {
    const active = document.activeElement;
    const input = active instanceof HTMLInputElement ? active : null;
    const caret = input ? [input.selectionStart, input.selectionEnd] : null;
    return () => {
      if (!input || !input.isConnected || document.activeElement === input) return;
      input.focus();
      if (caret && caret[0] !== null) input.setSelectionRange(caret[0], caret[1]);
    };
  }

  /**
   * Makes `parent`'s children read as `children` (freshly built, without event listeners) while
   * keeping the nodes already there: an attribute, a text that differs is changed in place, a node
   * of another kind replaced, the rest left alone. A poll redraws the overview every 2 s; rebuilt
   * from new nodes, a table a screen reader was reading lost its place at every poll, though
   * nothing in it had changed.
   */
  function morphChildren(parent, children) {
    const now = [...parent.childNodes];
    children.forEach((want, i) => {
      const have = now[i];
      if (!have) parent.append(want);
      else if (have.nodeType === Node.TEXT_NODE && want.nodeType === Node.TEXT_NODE) {
        if (have.data !== want.data) have.data = want.data;
      } else if (have.nodeType === Node.ELEMENT_NODE && have.nodeName === want.nodeName) morphElement(have, want);
      else parent.replaceChild(want, have);
    });
    for (const extra of now.slice(children.length)) extra.remove();
  }

  function morphElement(have, want) {
    for (const a of [...have.attributes]) if (!want.hasAttribute(a.name)) have.removeAttribute(a.name);
    for (const a of [...want.attributes]) if (have.getAttribute(a.name) !== a.value) have.setAttribute(a.name, a.value);
    morphChildren(have, [...want.childNodes]);
  }

  /**
   * For a view filled from the gateway's answers: only the answer to its latest request is shown. An
   * answer that comes back late (a slow request, an earlier click) is dropped rather than replacing
   * the newer one. Take a ticket before the request, and check it once the answer is in.
   */
  function latestOnly() {
    let last = 0;
    return () => {
      const mine = ++last;
      return () => mine === last;
    };
  }
  const searchTicket = latestOnly();
  const detailTicket = latestOnly();
  const deadTicket = latestOnly();
  const sandboxTicket = latestOnly();

  // ------------------------------------------------------------------ admin token
  const admin = {
    get token() {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    },
    /** The token's name as the gateway gave it at sign-in; '' for a bare token (the format of before). */
    get name() {
      return sessionStorage.getItem(NAME_KEY) || '';
    },
    set token(t) {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
      if (!t) sessionStorage.removeItem(NAME_KEY);
      refreshAdminUi();
      if (!t) maskRevealed();
    },
  };

  async function api(path, options = {}) {
    const method = options.method || 'GET';
    const headers = { Accept: 'application/json', ...(options.headers || {}) };
    if (options.admin && admin.token) headers.Authorization = `Bearer ${admin.token}`;
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    // A gateway that accepts the connection but never answers (hung, stopped under a debugger)
    // must not hold the page on its last answer: give up after REQUEST_TIMEOUT_MS.
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let res;
    let text;
    try {
      res = await fetch(path, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body), cache: 'no-store', signal: controller.signal });
      text = await res.text();
    } catch (err) {
      if (!controller.signal.aborted) throw err;
      const unsure = method === 'GET' ? '' : ' (it may still have done it: check before trying again)';
      throw Object.assign(new Error(`no answer from the gateway within ${REQUEST_TIMEOUT_MS / 1000} s${unsure}`), { timeout: true });
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    let parsed;
    try {
      data = parsed = text ? JSON.parse(text) : null;
    } catch {
      data = { error: text };
    }
    if (!res.ok) {
      let message = (data && data.error) || `HTTP ${res.status}`;
      // The token this tab signed in with is refused (rotated since: status.adminTokenFile): the
      // tab is signed out, and says so. Before, it read "Signed in" while every action failed,
      // each counted by the gateway as a wrong token (10 a minute lock the address out).
      if (options.admin && res.status === 401 && admin.token) {
        admin.token = '';
        message = `${message}: signed out, sign in again with the current token`;
      }
      // `answer`: the gateway's own words (its JSON error shape, `{ error, detail? }`), none from a
      // body that is not (a proxy's HTML page): poll() tells an answer from no answer.
      const own = typeof parsed === 'object' && parsed !== null && typeof parsed.error === 'string' ? parsed : null;
      throw Object.assign(new Error(message), { status: res.status, answer: own && { error: own.error, detail: typeof own.detail === 'string' ? own.detail : '' } });
    }
    return data;
  }

  function refreshAdminUi() {
    const signedIn = Boolean(admin.token);
    // Whose token the tab holds: the trail writes that name for every action taken here.
    const who = admin.name || 'administrator';
    $('admin-state').textContent = signedIn ? `Signed in as ${who} for this browser tab.` : 'Not signed in.';
    for (const b of document.querySelectorAll('.admin-only')) b.disabled = !signedIn;
    $('dead-hint').textContent = signedIn
      ? 'Replay a dead letter after fixing the cause, or discard it with a reason.'
      : 'Dead letters are events Odoo refused. Sign in on the Admin tab to replay or discard them.';
  }

  // ------------------------------------------------------------------ tabs
  const tabs = ['overview', 'messages', 'dead', 'sandbox', 'admin'];
  function showTab(name) {
    for (const t of tabs) {
      const selected = t === name;
      $(`tab-${t}`).setAttribute('aria-selected', String(selected));
      $(`panel-${t}`).hidden = !selected;
    }
    if (name === 'dead') loadDeadLetters();
    if (name === 'sandbox') loadSandbox();
    if (name === 'messages' && !$('msg-list').tBodies[0].rows.length) searchMessages();
  }
  for (const t of tabs) $(`tab-${t}`).addEventListener('click', () => showTab(t));

  // ------------------------------------------------------------------ status
  const TITLES = { ok: 'All good', degraded: 'Needs attention', down: 'Not accepting messages', offline: 'Gateway offline', error: 'Gateway answers with an error', stopping: 'Gateway stopping' };
  /**
   * Shown first while the status says `stopping`: the gateway is closing its links for a restart,
   * an update or a shutdown. Its health then keeps the reasons it had (none is cleared by the
   * stop), so "All good" in green would be a healthy look for a gateway taking nothing in.
   */
  const STOPPING_REASON = { code: 'STOPPING', message: 'The gateway is stopping (a restart, an update or a shutdown): analyzers and the LIS cannot send through it until it is back.' };
  let lastOkAt = null;
  /** The last status the gateway answered, shown as "last known" while it does not answer. */
  let lastStatus = null;
  let knownEndpoints = '';

  /**
   * A state as a coloured pill. `stale`: the gateway does not answer, so the state is the last one
   * it reported — grey and said so, never a green "connected" for an analyzer nobody watches now.
   */
  function statePill(state, cls, stale) {
    return stale
      ? el('span', { class: 'pill pill-idle', 'data-stale': '' }, `last known: ${state}`)
      : el('span', { class: `pill ${cls}` }, state);
  }

  function linkPill(state, stale) {
    const cls = state === 'connected' || state === 'listening' ? 'pill-ok' : state === 'starting' || state === 'connecting' ? 'pill-warn' : state === 'stopped' ? 'pill-idle' : 'pill-bad';
    return statePill(state, cls, stale);
  }

  /** An instant as a wall-clock time ("10:42"), with its date when it is not today. */
  function clockTime(iso) {
    const d = new Date(iso);
    const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return d.toDateString() === new Date(gatewayNow()).toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
  }

  /**
   * The line under an analyzer that gets LIS orders pushed (pushOrders): how many orders wait for
   * it, since when, and why the analyzer refused the last one. The place to look when its worklist
   * never arrives.
   */
  function orderDownloadLine(o, connections) {
    if (o.waiting === 0) return o.lastSentAt ? `No orders waiting, last sent ${ago(o.lastSentAt)}` : 'No orders waiting';
    let text = `${o.waiting} order${o.waiting === 1 ? '' : 's'} waiting since ${clockTime(o.oldestWaitingSince)}`;
    if (o.failing > 0) text += ` — last refusal (${o.lastErrorAccession}): ${o.lastError}`;
    else if (connections === 0) text += ' — the analyzer is not connected';
    return text;
  }

  /**
   * The banner is rebuilt only when the state or a reason's words change — not on every poll.
   * What a screen reader is told (#state-announce, a polite live region read as a whole) changes
   * only when the state does or a problem appears or clears (its code, link and level), in the
   * words of that moment: the banner's durations ("disconnected for 4 min") count on in sight,
   * unannounced. Before, the banner itself was the live region: four analyzers down at different
   * seconds read the whole banner out four times a minute, for as long as the outage lasted.
   */
  let shownState = '';
  let announcedState = '';
  function renderState(health, reasons, problems = 0) {
    const key = JSON.stringify([health, problems, reasons.map((r) => [r.code, r.message])]);
    if (key === shownState) return;
    shownState = key;
    const said = JSON.stringify([health, reasons.map((r) => [r.code, r.endpoint || '', r.level || ''])]);
    if (said !== announcedState) {
      announcedState = said;
      const title = TITLES[health] || health;
      const count = problems < 2 ? '' : `, ${problems} problems`;
      $('state-announce').textContent = reasons.length ? `${title}${count}: ${reasons.map((r) => r.message).join('; ')}` : title;
    }
    const box = $('state');
    box.className = `state state-${health}`;
    box.dataset.health = health;
    $('state-title').textContent = TITLES[health] || health;
    const count = $('state-count');
    count.hidden = problems < 2;
    count.textContent = problems < 2 ? '' : `${problems} problems`;
    const list = $('state-reasons');
    list.replaceChildren(...reasons.map((r) => el('li', { 'data-code': r.code }, r.message)));
  }

  /**
   * Shows a status. `stale`: the gateway no longer answers, or answers with an error, and `s` is
   * the last status it gave: the banner says so (poll, pollFailure), states are shown grey as
   * "last known", and ages keep counting to now (by the gateway's clock as last known). Before, the overview stayed as it was at the last
   * answer: after an hour's outage it still read a green "connected" analyzer whose last message
   * came "4 s ago".
   */
  /**
   * The health reasons in the banner's order: the gateway's (worst first), and within a level those
   * of the whole gateway (Odoo, its API key, the disk, a pause, dead letters) before those of one
   * link. The banner shows about four lines: with eight of thirty analyzers unplugged, an Odoo API
   * key about to expire was listed last, out of sight, and nothing said more was there.
   */
  function bannerReasons(reasons) {
    const rank = (r) => (r.level === 'down' ? 0 : 2) + (r.endpoint ? 1 : 0);
    return reasons.map((r, i) => [r, i]).sort(([a, i], [b, j]) => rank(a) - rank(b) || i - j).map(([r]) => r);
  }

  function render(s, stale) {
    if (!stale) {
      const generatedAt = Date.parse(s.generatedAt);
      if (Number.isFinite(generatedAt)) clockOffsetMs = generatedAt - Date.now();
      const reasons = bannerReasons(Array.isArray(s.healthReasons) ? s.healthReasons : []);
      if (s.stopping) renderState('stopping', [STOPPING_REASON, ...reasons], reasons.length);
      else renderState(s.health, reasons, reasons.length);
      $('gw-updated').textContent = new Date().toLocaleTimeString();
    }
    $('panel-overview').toggleAttribute('data-stale', Boolean(stale));
    $('gw-id').textContent = s.gatewayId;
    $('gw-version').textContent = `v${s.version}`;
    $('gw-started').textContent = new Date(s.startedAt).toLocaleString();

    const details = new Map((s.endpointDetail || []).map((e) => [e.id, e]));
    const rows = s.endpoints.flatMap((e) => {
      const d = details.get(e.id) || {};
      const type = d.role === 'analyzer' ? `Analyzer (${e.kind.toUpperCase()})` : `LIS (${e.kind.toUpperCase()})`;
      const orders = e.orderDownload
        ? [el('tr', { class: 'order-download', 'data-order-download': e.id },
            el('td', {}),
            el('td', { colspan: 5, class: e.orderDownload.failing > 0 ? 'order-download-failing' : 'muted' }, orderDownloadLine(e.orderDownload, e.connections)))]
        : [];
      return [el('tr', { 'data-endpoint': e.id, class: orders.length ? 'has-orders' : undefined },
        el('th', { scope: 'row' }, e.id),
        el('td', {}, type),
        el('td', {}, linkPill(e.state, stale), d.detail ? el('span', { class: 'muted' }, ` ${d.detail}`) : null),
        el('td', {}, String(e.connections)),
        el('td', { title: e.lastMessageAt || '' }, ago(e.lastMessageAt)),
        el('td', {}, d.received !== undefined ? `${d.accepted} ok, ${d.rejected} rejected` : '—')), ...orders];
    });
    morphChildren($('endpoints').tBodies[0], rows);
    const ids = s.endpoints.map((e) => e.id).join(',');
    if (ids !== knownEndpoints) {
      knownEndpoints = ids;
      $('msg-endpoint').replaceChildren(el('option', { value: '' }, 'All'), ...s.endpoints.map((e) => el('option', { value: e.id }, e.id)));
    }

    const q = s.queue;
    $('q-pending').textContent = q.pending;
    $('q-inflight').textContent = q.inFlight;
    $('q-retrying').textContent = q.retrying;
    $('q-dead').textContent = q.deadLettered;
    $('q-blocked').textContent = s.blockedPartitions ?? '—';
    $('q-delivered').textContent = q.delivered;
    $('q-oldest').textContent = duration(q.oldestPendingAgeSeconds);
    // Deliveries a stopped gateway left in flight, held after the restart before they are looked
    // up in Odoo (the gateway's words: how many, until when, why). Not shown from a status kept
    // while the gateway does not answer: the hold it told of may be over.
    const hold = !stale && s.settleHold && typeof s.settleHold.message === 'string' ? s.settleHold : null;
    const settle = $('q-settle');
    settle.hidden = !hold;
    settle.textContent = hold ? hold.message : '';
    const badge = $('dead-badge');
    badge.hidden = !q.deadLettered;
    badge.textContent = q.deadLettered;

    const o = s.odoo;
    $('o-state').replaceChildren(statePill(o.state, o.state === 'connected' || o.state === 'sandbox' ? 'pill-ok' : o.state === 'connecting' || o.state === 'paused' ? 'pill-warn' : 'pill-bad', stale));
    $('o-success').textContent = ago(o.lastSuccessAt);
    $('o-error').textContent = o.lastError || 'none';
    const days = s.odooDetail && s.odooDetail.apiKeyExpiresInDays;
    $('o-key').textContent = days === null || days === undefined ? 'no expiry known' : days < 0 ? 'expired' : `expires in ${days} days`;
    $('o-relay').textContent = s.relayPaused ? 'paused by an administrator' : 'running';

    const i = s.intake;
    $('i-received').textContent = i.received;
    $('i-accepted').textContent = i.accepted;
    $('i-rejected').textContent = i.rejected;
    $('i-duplicates').textContent = i.duplicates;
    $('i-rate').textContent = s.throughput ? `${s.throughput.receivedPerMinute} in, ${s.throughput.deliveredPerMinute} to Odoo` : '—';
    $('i-disk').textContent = s.disk ? `${bytes(s.disk.freeBytes)} of ${bytes(s.disk.totalBytes)}` : '—';
    // Lines the gateway's log could not take (its reader gone, its disk full): the log has a gap there.
    const log = s.log;
    const logCell = $('i-log');
    logCell.textContent = !log ? '—' : log.droppedLines === 0 ? 'none' : `${log.droppedLines}, the last ${clockTime(log.lastDroppedAt)}${log.lastError ? ` (${log.lastError})` : ''}`;
    logCell.classList.toggle('log-lost', Boolean(log && log.droppedLines > 0));
    logCell.title = log && log.lastDroppedAt ? log.lastDroppedAt : '';
    $('tab-sandbox').hidden = !s.sandbox;

    // The gateway's one-off alerts (a clock set wrong at start-up, another Odoo, …): said once on
    // the MQTT alerts topic (which keeps only the last); here, the recent ones, for whoever looks later.
    const recent = Array.isArray(s.recentAlerts) ? s.recentAlerts : [];
    $('alerts-card').hidden = recent.length === 0;
    morphChildren($('recent-alerts'), recent.map((a) => el('li', { 'data-code': a.code },
      el('span', { class: 'muted', title: a.at }, clockTime(a.at)), ' ',
      a.severity === 'info' ? '' : `${a.severity === 'critical' ? 'Critical' : 'Warning'}: `,
      a.message,
      a.endpoint ? el('span', { class: 'muted' }, ` (${a.endpoint})`) : null)));
  }

  /**
   * The gateway version this page came with (its first status). A gateway that answers with
   * another one was upgraded: its page may differ (a fix of the page itself), so the page it serves
   * now is loaded — once nothing is typed in this one (a reason, a token, a search) and no key was
   * pressed for TYPING_QUIET_MS, so that no text is lost; until then at each poll. Before, a page
   * left open (the wall screen, the tray's window) ran the old page after an upgrade until someone
   * reloaded it by hand.
   *
   * It cannot loop: the tab remembers (sessionStorage) when it reloaded itself, for which version
   * and from which ones. It never reloads for a version it reloaded away from (two gateways behind
   * one address, a version that flaps, a rollback: the page shown stays), and at most once in
   * RELOAD_PAUSE_MS whatever the versions say. It reloads only once the gateway serves the page
   * again (a reload into a gateway gone meanwhile shows the browser's error page, which polls
   * nothing and stays), and without sessionStorage not at all.
   */
  const RELOAD_KEY = 'labGatewayPageReload';
  const RELOAD_PAUSE_MS = 10 * 60_000;
  const TYPING_QUIET_MS = 10_000;
  const TEXT_INPUTS = new Set(['text', 'search', 'password', 'email', 'url', 'tel', 'number']);
  let lastKeyAt = Number.NEGATIVE_INFINITY;
  for (const type of ['keydown', 'input', 'compositionstart']) document.addEventListener(type, () => (lastKeyAt = performance.now()), true);

  /** The tab's record of its reloads: { at, to, left: [versions reloaded away from] }, null when none, undefined without storage. */
  function reloadRecord() {
    try {
      const r = JSON.parse(sessionStorage.getItem(RELOAD_KEY) || 'null');
      return r && typeof r === 'object' && Array.isArray(r.left) ? r : null;
    } catch {
      return undefined;
    }
  }
  // Loaded by that reload (within the minute): the page is the one of the version it reloaded for.
  const loadedAfterReload = reloadRecord();
  const justReloaded = loadedAfterReload && typeof loadedAfterReload.to === 'string' && Math.abs(Date.now() - Number(loadedAfterReload.at)) < 60_000;
  let pageVersion = justReloaded ? loadedAfterReload.to : null;

  function typing() {
    if (performance.now() - lastKeyAt < TYPING_QUIET_MS) return true;
    return [...document.querySelectorAll('input, textarea')].some((i) => (i.tagName === 'TEXTAREA' || TEXT_INPUTS.has(i.type)) && i.value !== '');
  }

  function upgradedPage(s) {
    if (typeof s.version !== 'string' || !s.version) return false;
    if (pageVersion === null) pageVersion = s.version;
    if (s.version === pageVersion || typing()) return false;
    const record = reloadRecord();
    if (record === undefined) return false;
    if (record && record.left.includes(s.version)) return false;
    const at = record ? Number(record.at) : 0;
    const now = Date.now();
    return !(at > 0 && at <= now && now - at < RELOAD_PAUSE_MS);
  }

  /** Loads the page the gateway serves now (see upgradedPage); false when it does not serve it or text was typed meanwhile. */
  async function reloadFor(version) {
    try {
      const res = await fetch(location.href.split('#')[0], { cache: 'no-store' });
      await res.text();
      if (!res.ok) return false;
    } catch {
      return false;
    }
    if (typing()) return false;
    const record = reloadRecord();
    if (record === undefined) return false;
    const left = [...(record ? record.left : []), pageVersion].filter((v, i, all) => typeof v === 'string' && all.indexOf(v) === i).slice(-20);
    try {
      sessionStorage.setItem(RELOAD_KEY, JSON.stringify({ at: Date.now(), to: version, left }));
    } catch {
      return false;
    }
    location.reload();
    return true;
  }

  /** A gateway's message as one line of the banner, at most `max` characters. */
  function oneLine(text, max) {
    const t = String(text).replace(/\s+/g, ' ').trim();
    return t.length <= max ? t : `${t.slice(0, max - 1)}…`;
  }

  /**
   * The banner's reason when the poll of /api/status failed (`err` from api()). A gateway that
   * answered with an HTTP error is running: it is told apart from one that does not answer (no
   * connection, no answer within REQUEST_TIMEOUT_MS), with the status code and the gateway's own
   * message. Before, every failure read "The gateway does not answer": a technician restarted a
   * gateway that ran, and IT looked for a network fault that was not there.
   */
  function pollFailure(err) {
    const when = lastOkAt && (lastOkAt.toDateString() === new Date().toDateString() ? lastOkAt.toLocaleTimeString() : lastOkAt.toLocaleString());
    const status = err && typeof err.status === 'number' ? err.status : 0;
    if (!status) {
      const since = lastOkAt ? ` — no answer since ${when}; below is what it showed then` : '';
      return { health: 'offline', reason: { code: 'OFFLINE', message: `The gateway does not answer${since}.` } };
    }
    const then = lastOkAt ? ` Below is what it showed at ${when}.` : '';
    if (status === 421) {
      // The Host check (status.allowedHosts): every request naming this page's host is refused.
      return {
        health: 'error',
        reason: { code: 'HOST_NOT_ACCEPTED', message: `The gateway answered, but does not accept the name this page was opened with, "${location.hostname}" (HTTP 421): add the name to status.allowedHosts in the gateway's configuration (read when it starts), or open the page by the gateway's IP address.${then}` },
      };
    }
    const answer = err.answer;
    if (!answer) {
      // Not the gateway's JSON (a proxy's error page): who answered is not known.
      return { health: 'error', reason: { code: 'HTTP_ERROR', message: `The request for the gateway's status was answered with an error (HTTP ${status}), not in the gateway's words (a proxy in between?).${then}` } };
    }
    const words = `${oneLine(answer.error, 200)}${answer.detail ? ` (${oneLine(answer.detail, 200)})` : ''}`;
    return { health: 'error', reason: { code: 'HTTP_ERROR', message: `The gateway answered with an error (HTTP ${status}): ${words}. It is running, but gave no status.${then}` } };
  }

  async function poll() {
    try {
      const s = await api('/api/status');
      lastOkAt = new Date();
      lastStatus = s;
      if (upgradedPage(s) && (await reloadFor(s.version))) return;
      render(s);
    } catch (err) {
      const failed = pollFailure(err);
      renderState(failed.health, [failed.reason]);
      if (lastStatus) render(lastStatus, true);
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  // ------------------------------------------------------------------ messages
  /** Show control characters (MLLP, ASTM framing, segment ends) as visible marks. */
  const CTRL_NAMES = { 0x02: 'STX', 0x03: 'ETX', 0x04: 'EOT', 0x05: 'ENQ', 0x06: 'ACK', 0x0b: 'VT', 0x0d: 'CR', 0x0a: 'LF', 0x15: 'NAK', 0x17: 'ETB', 0x1c: 'FS', 0x09: 'TAB' };
  function visibleRaw(text) {
    const pre = el('pre', { class: 'raw', 'aria-label': 'Raw message' });
    let plain = '';
    const flush = () => {
      if (plain) pre.append(plain);
      plain = '';
    };
    for (const ch of text) {
      const code = ch.codePointAt(0);
      if (code < 0x20 || code === 0x7f) {
        flush();
        pre.append(el('span', { class: 'ctrl' }, `<${CTRL_NAMES[code] || code.toString(16).padStart(2, '0')}>`));
        if (code === 0x0d || code === 0x0a) pre.append('\n');
      } else plain += ch;
    }
    flush();
    return pre;
  }

  /** Messages a page of the list asks for, and the rows one click adds at most. */
  const MSG_PAGE = 50;
  /**
   * Requests one click makes at most. Without a search term the gateway reads at most 5,000
   * records per request (it keeps no index by connection) and answers a short or empty page with
   * `next` when it stopped there: the list follows `next` by itself, one request after the other,
   * until it has a page of messages or has read this many requests' worth (50,000 records), then
   * offers "Search older messages". Before, it showed the first answer only: an analyzer whose
   * messages were older than the newest 5,000 records read "No message found."
   */
  const MSG_AUTO_REQUESTS = 10;
  /** The search shown: its parameters (no `before`), the `before` of what comes next (null: the end), rows shown. */
  let msgSearch = { params: new URLSearchParams(), next: null, shown: 0 };

  function messageRow(m) {
    return el('tr', { class: 'clickable', tabindex: '0', 'data-id': m.id, onclick: () => showMessage(m.id), onkeydown: (e) => { if (e.key === 'Enter') showMessage(m.id); } },
      el('td', { title: m.receivedAt }, ago(m.receivedAt)),
      el('td', {}, m.endpoint),
      el('td', {}, m.messageType || m.kind),
      el('td', {}, m.controlId || '—'),
      el('td', {}, el('span', { class: `pill ${m.status === 'accepted' ? 'pill-ok' : 'pill-bad'}` }, m.status), m.duplicates ? ` +${m.duplicates} dup` : ''));
  }

  /** The list's one-line verdict (no message, a failure), in place of its rows. */
  function listNote(text) {
    return el('tr', { class: 'list-note' }, el('td', { colspan: '5' }, text));
  }

  function searchMessages(ev) {
    if (ev) ev.preventDefault();
    const params = new URLSearchParams({ limit: String(MSG_PAGE) });
    const q = $('msg-q').value.trim();
    const endpoint = $('msg-endpoint').value;
    if (q) params.set('q', q);
    if (endpoint) params.set('endpoint', endpoint);
    msgSearch = { params, next: null, shown: 0 };
    return loadMessages(true);
  }

  /**
   * Fills the list (`fresh`: a new search, its rows replace the old ones on the first answer) or
   * adds the older messages of the search shown, following `next` as described at MSG_AUTO_REQUESTS.
   * The list is "No message found." only once the gateway said there is nothing more (`next` null).
   */
  async function loadMessages(fresh) {
    const search = msgSearch;
    const list = $('msg-list');
    const body = list.tBodies[0];
    const more = $('msg-more');
    const progress = $('msg-progress');
    const isLatest = searchTicket();
    list.setAttribute('aria-busy', 'true');
    more.hidden = true;
    progress.textContent = fresh ? 'Searching…' : 'Searching older messages…';
    let found = 0;
    let requests = 0;
    let failure = null;
    try {
      do {
        const params = new URLSearchParams(search.params);
        if (!fresh || requests > 0) params.set('before', search.next);
        const { messages, next } = await api(`/api/messages?${params}`);
        if (!isLatest()) return;
        if (fresh && requests === 0) body.replaceChildren();
        requests++;
        for (const note of body.querySelectorAll('tr.list-note')) note.remove();
        body.append(...messages.map(messageRow));
        found += messages.length;
        search.shown += messages.length;
        search.next = next ?? null;
        if (search.next && found < MSG_PAGE) progress.textContent = `Searching older messages… (${search.shown} found so far)`;
      } while (search.next && found < MSG_PAGE && requests < MSG_AUTO_REQUESTS);
    } catch (err) {
      if (!isLatest()) return;
      failure = err;
    }
    list.removeAttribute('aria-busy');
    if (failure) {
      // The rows shown stay; `next` is unchanged, so the button tries the same request again.
      if (search.shown === 0) body.replaceChildren(listNote(`Search failed: ${failure.message}`));
      progress.textContent = search.shown === 0 ? '' : `Searching older messages failed: ${failure.message}`;
      if (search.shown === 0 && search.next) progress.textContent = 'The messages searched before the failure hold none.';
      more.hidden = !search.next;
      more.textContent = 'Try again';
      return;
    }
    if (search.shown === 0) {
      body.replaceChildren(listNote(search.next ? 'None among the newest messages searched so far; older ones are not searched yet.' : 'No message found.'));
    }
    progress.textContent = search.next ? '' : search.shown === 0 ? '' : 'No older messages.';
    more.hidden = !search.next;
    more.textContent = search.shown === 0 ? 'Search older messages' : 'Show older messages';
  }
  $('msg-search').addEventListener('submit', searchMessages);
  $('msg-more').addEventListener('click', () => loadMessages(false));

  async function showMessage(id, reveal, reason) {
    for (const r of $('msg-list').tBodies[0].rows) r.setAttribute('aria-selected', String(r.dataset.id === id));
    const box = $('msg-detail');
    const isLatest = detailTicket();
    try {
      const url = `/api/messages/${encodeURIComponent(id)}${reveal ? `?reveal=1&reason=${encodeURIComponent(reason || '')}` : ''}`;
      const d = await api(url, { admin: Boolean(reveal) });
      if (!isLatest()) return;
      if (reveal && !admin.token) return void showMessage(id); // signed out while it was on its way
      const restoreFocus = holdFocus();
      const m = d.message;
      const parts = [
        el('h3', {}, `${m.messageType || m.kind} from ${m.endpoint}`),
        el('p', { class: 'muted' }, `Control id ${m.controlId || '—'} · received ${new Date(m.receivedAt).toLocaleString()} · ${m.size} bytes · ${m.status}${m.rejectReason ? ` (${m.rejectReason})` : ''}`),
        visibleRaw(d.raw),
      ];
      if (d.namesMasked) {
        // Showing the same message again (a click, the admin signing in) keeps the reason being typed:
        // the same input moves into the new detail.
        const reasonInput = (box.dataset.id === id && $('reveal-reason')) ||
          el('input', { type: 'text', id: 'reveal-reason', 'aria-label': 'Reason to reveal names', placeholder: 'Reason (kept in the audit log)' });
        parts.push(el('div', { class: 'row' },
          el('span', { class: 'muted' }, 'Patient names are hidden.'),
          reasonInput,
          el('button', { type: 'button', class: 'admin-only', disabled: !admin.token, onclick: () => showMessage(id, true, reasonInput.value) }, 'Reveal names (audited)')));
      }
      if (d.ack) parts.push(el('h3', {}, 'Acknowledgement sent'), visibleRaw(d.ack));
      parts.push(el('h3', {}, `Events (${d.events.length})`));
      parts.push(d.events.length
        ? el('ul', {}, d.events.map((e) => el('li', {}, `${e.event.type} · ${e.state}${e.deadReason ? ` — ${e.deadReason}` : ''}${e.lastError && e.lastError !== e.deadReason ? ` — ${e.lastError}` : ''} · ${e.event.correlationId || ''}`)))
        : el('p', { class: 'muted' }, 'No events derived from this message.'));
      parts.push(el('h3', {}, 'Odoo documents'));
      // A document posted while commissioning is in the sandbox, not in the real Odoo the gateway
      // may post to now (the same id there is another record). Refs stored before the mark carry none.
      parts.push(d.odoo.length
        ? el('ul', {}, d.odoo.map((r) => el('li', {}, `${r.model} #${r.id}${r.name ? ` ${r.name}` : ''}${r.externalId ? ` (${r.externalId})` : ''}${r.sandbox ? ' (sandbox)' : ''}`)))
        : el('p', { class: 'muted' }, 'None yet.'));
      box.replaceChildren(...parts);
      box.dataset.id = id;
      if (reveal && !d.namesMasked) box.dataset.revealed = '1';
      else delete box.dataset.revealed;
      restoreFocus();
    } catch (err) {
      if (!isLatest()) return;
      box.replaceChildren(el('p', {}, `Cannot show the message: ${err.message}`));
      delete box.dataset.id;
    }
  }

  /**
   * Signing out hides the names revealed while signed in: the detail is emptied at once, then the
   * same message shown again, masked. Before, the unmasked names stayed on screen for whoever sat
   * down next at the signed-out page.
   */
  function maskRevealed() {
    const box = $('msg-detail');
    if (box.dataset.revealed !== '1') return;
    const id = box.dataset.id;
    delete box.dataset.revealed;
    box.replaceChildren(el('p', { class: 'muted' }, 'Signed out: names hidden again.'));
    if (id) showMessage(id);
  }

  // ------------------------------------------------------------------ dead letters
  /**
   * Dead letters one answer carries. A gateway may hold more (an Odoo outage with a wrong product
   * mapping dead-letters hundreds): the answer's `next` then says so, the list says more exist and
   * offers "Show more dead letters". Before, it showed the first 200 as if they were all while the
   * tab's badge counted 205: an operator replayed "all" of them and five stayed dead.
   */
  const DEAD_PAGE = 200;
  /** The `after` of the dead letters not listed yet (null: all are listed), and the rows shown. */
  let deadList = { next: null, shown: 0 };

  function deadRow(e, inputs) {
    const id = e.event.id;
    const reason = inputs.get(id) || el('input', { type: 'text', 'aria-label': `Reason for ${id}`, 'data-reason-for': id });
    return el('tr', { 'data-event': id },
      el('td', {}, e.event.type, el('br'), el('small', { class: 'muted' }, id)),
      el('td', {}, e.event.correlationId || e.event.partitionKey),
      el('td', {}, e.deadReason || e.lastError || '—'),
      el('td', {}, String(e.attempts)),
      el('td', {}, reason),
      el('td', {},
        el('button', { type: 'button', class: 'admin-only', 'data-action': 'replay', disabled: !admin.token, onclick: () => act(id, 'replay', reason.value) }, 'Replay'), ' ',
        el('button', { type: 'button', class: 'admin-only danger', 'data-action': 'discard', disabled: !admin.token, onclick: () => act(id, 'discard', reason.value) }, 'Discard')));
  }

  /**
   * Lists the dead letters from the first (more: false) or adds the next page (more: true). A
   * refresh (opening the tab, after a replay or discard) lists again at least as many as were
   * shown, so the rows an operator has loaded stay on screen.
   */
  async function loadDeadLetters(more) {
    const table = $('dead-list');
    const body = table.tBodies[0];
    const progress = $('dead-progress');
    const button = $('dead-more');
    const isLatest = deadTicket();
    const appending = more === true && deadList.next !== null;
    const want = appending ? DEAD_PAGE : Math.max(DEAD_PAGE, deadList.shown);
    let after = appending ? deadList.next : null;
    const found = [];
    let next = null;
    table.setAttribute('aria-busy', 'true');
    button.disabled = true;
    try {
      do {
        const page = await api(`/api/events?state=dead&limit=${DEAD_PAGE}${after ? `&after=${encodeURIComponent(after)}` : ''}`);
        if (!isLatest()) return;
        found.push(...page.events);
        next = page.next || null;
        after = next;
      } while (next && found.length < want);
    } catch (err) {
      if (!isLatest()) return;
      table.removeAttribute('aria-busy');
      button.disabled = false;
      if (appending) {
        // The rows shown stay and `next` is unchanged: the button tries the same page again.
        progress.textContent = `Cannot list more dead letters: ${err.message}. More dead letters are not listed yet.`;
        button.textContent = 'Try again';
        return;
      }
      deadList = { next: null, shown: 0 };
      body.replaceChildren(el('tr', {}, el('td', { colspan: '6' }, `Cannot list dead letters: ${err.message}`)));
      progress.textContent = '';
      button.hidden = true;
      return;
    }
    table.removeAttribute('aria-busy');
    button.disabled = false;
    // A refresh must not wipe a reason being typed: the same input moves to the new row.
    const inputs = new Map([...body.querySelectorAll('input[data-reason-for]')].map((i) => [i.dataset.reasonFor, i]));
    const restoreFocus = holdFocus();
    const rows = found.map((e) => deadRow(e, inputs));
    if (appending) body.append(...rows);
    else if (rows.length) body.replaceChildren(...rows);
    else body.replaceChildren(el('tr', {}, el('td', { colspan: '6' }, next ? 'None listed yet; more dead letters are not listed yet.' : 'No dead letters.')));
    restoreFocus();
    deadList = { next, shown: (appending ? deadList.shown : 0) + found.length };
    progress.textContent = next ? `Showing ${deadList.shown} dead letters: more dead letters are not listed yet.` : '';
    button.hidden = !next;
    button.textContent = 'Show more dead letters';
  }
  $('dead-more').addEventListener('click', () => loadDeadLetters(true));

  /**
   * Replays or discards a dead letter, then lists them again. The list is drawn anew, so the button
   * used goes with its row: the focus is put where the work goes on — the same button when the row
   * is still there (the action failed), else the reason of the dead letter now in its place (or the
   * last one), else the result said. Before, it fell to the top of the page: a keyboard user tabbed
   * through the whole page again for each dead letter. A discard without a reason puts the focus on
   * the reason to type.
   */
  async function act(id, action, reason) {
    const out = $('dead-result');
    const body = $('dead-list').tBodies[0];
    const rowOf = (eventId) => [...body.querySelectorAll('tr[data-event]')].find((r) => r.dataset.event === eventId);
    if (action === 'discard' && !reason.trim()) {
      out.textContent = 'A discard needs a reason.';
      const input = rowOf(id)?.querySelector('input[data-reason-for]');
      if (input) input.focus();
      return;
    }
    const place = [...body.querySelectorAll('tr[data-event]')].indexOf(rowOf(id));
    try {
      const r = await api(`/api/events/${encodeURIComponent(id)}/${action}`, { method: 'POST', admin: true, body: { reason } });
      out.textContent = `${action === 'replay' ? 'Replayed' : 'Discarded'} ${id}: now ${r.state}.`;
    } catch (err) {
      out.textContent = `${action} failed: ${err.status === 401 ? 'the admin token is not accepted (rotated since?): signed out, sign in again with the current token' : err.message}`;
    }
    await loadDeadLetters();
    // Only a focus the redraw lost is put back: one the user moved meanwhile stays where it is.
    if (document.activeElement && document.activeElement !== document.body) return;
    const rows = [...body.querySelectorAll('tr[data-event]')];
    const same = rowOf(id);
    const target = same
      ? same.querySelector(`button[data-action="${action}"]`)
      : (rows[Math.max(0, place)] || rows[rows.length - 1])?.querySelector('input[data-reason-for]');
    (target && !target.disabled ? target : out).focus();
  }

  // ------------------------------------------------------------------ sandbox
  async function loadSandbox() {
    const isLatest = sandboxTicket();
    try {
      const d = await api('/api/sandbox');
      if (!isLatest()) return;
      $('sandbox-records').textContent = JSON.stringify(d.records, null, 2);
    } catch (err) {
      if (!isLatest()) return;
      $('sandbox-records').textContent = `Not available: ${err.message}`;
    }
  }

  // ------------------------------------------------------------------ admin
  $('admin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = $('admin-token').value.trim();
    if (!token) return;
    try {
      const who = await api('/api/admin/check', { headers: { Authorization: `Bearer ${token}` } });
      if (who && typeof who.name === 'string' && who.name) sessionStorage.setItem(NAME_KEY, who.name);
      else sessionStorage.removeItem(NAME_KEY);
      admin.token = token;
      $('admin-token').value = '';
    } catch (err) {
      $('admin-state').textContent = err.status === 401 ? 'That token is not accepted.' : `Sign-in failed: ${err.message}`;
    }
  });
  $('admin-signout').addEventListener('click', () => {
    admin.token = '';
  });
  for (const action of ['pause', 'resume']) {
    $(`relay-${action}`).addEventListener('click', async () => {
      try {
        const r = await api(`/api/relay/${action}`, { method: 'POST', admin: true, body: { reason: $('relay-reason').value } });
        $('admin-state').textContent = r.paused ? 'Sending to Odoo is paused.' : 'Sending to Odoo is running.';
      } catch (err) {
        $('admin-state').textContent = `${action} failed: ${err.message}`;
      }
    });
  }

  refreshAdminUi();
  poll();
})();

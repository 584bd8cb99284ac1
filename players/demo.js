/*
 * Streaming gateway demo: hls.js, dash.js or shaka-player + the session API, with player-side token renewal.
 *
 *   POST /api/sessions ──▶ {playback_url, token, expires_at, session_ends_at, refresh_url}
 *   player.load(playback_url)           every request passes through the player's request hook (hls.js
 *                                        xhrSetup, dash.js request interceptor, shaka request filter), which
 *                                        puts the *current* session token into the URL (query or path mode)
 *   at 75 % of the token's life ──▶ POST refresh_url {token} ──▶ new token (cookie modes: Set-Cookie too)
 *   a media 403 `expired` ──▶ refresh once, then the player retries the same request through its hook
 *                             (hls.js and dash.js; shaka never retries a 403)
 *   `?renew=off`: none of the above; the player loads the URLs exactly as the gateway's manifests give them
 *
 * The gateway already writes a token into every URI of every playlist it serves, so a player with no
 * token logic at all plays; this page adds what a real app wants on top: a session it can show,
 * renewal ahead of expiry (also after a long pause), and every refusal made visible with its reason.
 *
 * Cross-site: `?gateway=http://127.0.0.1:8000` makes a page served from another site (a player embedded
 * elsewhere) call that gateway: the session API and every playback URL go there. In the cookie and hybrid
 * modes those requests carry credentials (`credentials: 'include'`, `xhr.withCredentials = true`), which the
 * gateway answers only for origins in its `[cors] allowed_origins`; query and path modes send none and work
 * from any site. A demo hook: a real app knows its gateway and never takes it from its own URL.
 *
 * Plain browser JavaScript, no build step. The players are served by the gateway at /players/vendor/.
 */
(function () {
  'use strict';

  const TOKEN_PARAM = 'token';     // the gateway's query parameter (its `token_param` setting)
  const REFRESH_AT = 0.75;         // renew when 75 % of the token's life has passed
  const EXPIRY_MARGIN_S = 3;       // a token with less life than this is renewed before a request uses it
  const RETRY_BACKOFF_S = [2, 4, 8, 16, 30];  // refresh retries after a network error or a 5xx
  // Refusals of the refresh API that no retry can fix: the session is over.
  const TERMINAL_REFRESH_ERRORS = new Set(['revoked', 'session_ended', 'not_entitled', 'geo_blocked',
    'unauthenticated', 'bad_signature', 'unknown_key', 'malformed', 'acl', 'ip', 'stream_limit']);
  // Startup warnings hls.js 1.7.4 raises on ffmpeg-made MPEG-TS (see the README): kept in T.errors,
  // but not shown as problems on the page.
  const KNOWN_BENIGN = new Set(['bufferAppendNoProgress', 'bufferSeekOverHole']);

  const params = new URLSearchParams(location.search);
  // Where the gateway is: the page's own origin, or `?gateway=` (see the top of this file).
  const GATEWAY_ORIGIN = (() => {
    try {
      const given = new URL(params.get('gateway') || location.origin);
      if (given.protocol === 'http:' || given.protocol === 'https:') return given.origin;
    } catch { /* not a URL: fall back to the page's origin */ }
    return location.origin;
  })();
  const gatewayUrl = (pathOrUrl) => new URL(pathOrUrl, GATEWAY_ORIGIN + '/').href;
  const isGatewayUrl = (url) => {
    try { return new URL(url, location.href).origin === GATEWAY_ORIGIN; } catch { return false; }
  };
  // Cookie and hybrid sessions ride on the gateway's cookie: requests to the gateway must carry
  // credentials, which for another site means `include` (and a listed origin at the gateway). Query
  // and path sessions never need them, so they keep working from sites the gateway does not list.
  const COOKIE_MODES = new Set(['cookie', 'hybrid']);
  const credentialsFor = (mode) => (COOKIE_MODES.has(mode) ? 'include' : 'same-origin');
  // `?renew=reactive` switches off renewal ahead of expiry, leaving only the fallback (refresh after a
  // `403 expired`, then retry): useful to watch that path, not how a real app should run.
  // `?renew=off` switches off ALL player-side renewal: no refresh timer, no refresh after a 403 and no
  // token swapping in xhrSetup, so every request uses the URL exactly as the playlist gave it. It shows
  // what the gateway's rolling scoped tokens do on their own (live playlists carry fresh media tokens on
  // every reload). Denials are still recorded and shown.
  const RENEW_OFF = params.get('renew') === 'off';
  const RENEW_AHEAD = params.get('renew') !== 'reactive' && !RENEW_OFF;
  const $ = (id) => document.getElementById(id);
  const video = $('video');

  // ---- State that tests read ------------------------------------------------------------------------
  const T = (window.T = { errors: [], events: [], frags: [], levels: [], switched: [], denials: [] });

  let catalog = { users: [], titles: [], modes: [], live_modes: [] };
  let engine = null;     // the chosen player's adapter (see Players below)
  let session = null;    // see startSession()
  let refreshTimer = 0;
  let inFlightRefresh = null;        // one refresh at a time; concurrent callers share the promise
  const expiredRetries = new Set();  // context URLs that got `403 expired` and may be retried once
  const retriedOnce = new Set();     // context URLs already retried after `expired` (until they succeed)

  // ---- Events: on screen, on the console, in window.T ------------------------------------------------
  function emit(type, data = {}) {
    const event = { type, at: new Date().toISOString(), ...data };
    T.events.push(event);
    console.info('gateway-event', JSON.stringify(event));
    const item = document.createElement('li');
    item.className = `ev ev-${type}`;
    const time = document.createElement('time');
    time.textContent = event.at.slice(11, 19);
    const text = document.createElement('span');
    text.textContent = describe(event);
    item.append(time, text);
    $('log').prepend(item);
    while ($('log').children.length > 60) $('log').lastChild.remove();
  }

  function describe(e) {
    switch (e.type) {
      case 'session_started': return `session ${e.session_id} (${e.mode}), token for ${fmtDuration(e.token_life_s)}`;
      case 'refreshed': return `token refreshed (${e.trigger}), good for ${fmtDuration(e.token_life_s)}`;
      case 'refresh_failed': return `refresh failed: ${e.error}${e.detail ? ' — ' + e.detail : ''}` +
        (e.retry_in_s ? ` (retry in ${e.retry_in_s} s)` : '');
      case 'refresh_not_needed': return 'token already lasts until the session ends: no refresh';
      case 'denial': return `${e.status} ${e.reason} on ${e.source}${e.url ? ' ' + shortPath(e.url) : ''}`;
      case 'expired_retry': return `403 expired on ${shortPath(e.url)}: refreshing, then retrying once`;
      case 'revoked': return `session ${e.session_id} revoked`;
      case 'playback_stopped': return `playback stopped: ${e.reason}`;
      case 'player_error': return `${e.player} ${e.fatal ? 'FATAL ' : ''}${e.details}${e.code ? ' (' + e.code + ')' : ''}`;
      case 'level_switched': return `playing level ${e.level} (${e.label})`;
      case 'level_selected': return e.level < 0 ? 'quality: auto (ABR)' : `quality: level ${e.level} (${e.label}) selected`;
      case 'revoke_failed': return `revoke failed: ${e.error || e.status}`;
      default: return `${e.type} ${JSON.stringify(e)}`;
    }
  }

  // ---- Denials ------------------------------------------------------------------------------------
  function showDenial({ source, status, reason, detail }) {
    const box = $('denial');
    box.hidden = false;
    box.dataset.reason = reason || 'unknown';
    box.dataset.source = source;
    $('denial-status').textContent = status ? String(status) : '';
    $('denial-reason').textContent = reason || 'unknown';
    $('denial-source').textContent = `from the ${source}`;
    $('denial-detail').textContent = detail || '(no detail given)';
  }

  function clearDenial() {
    const box = $('denial');
    box.hidden = true;
    box.dataset.reason = '';
  }

  function recordDenial(denial) {
    T.denials.push({ ...denial, at: new Date().toISOString() });
    emit('denial', denial);
    showDenial(denial);
  }

  async function readJson(response) {
    try { return await response.json(); } catch { return {}; }
  }

  // ---- Clock: the token's times are the gateway's epoch seconds ---------------------------------------
  let clockSkewS = 0;  // gateway clock minus ours, from the Date header (1 s resolution: ignore small ones)
  function noteServerDate(response) {
    const serverMs = Date.parse(response.headers.get('date') || '');
    if (!Number.isNaN(serverMs)) {
      const skew = (serverMs - Date.now()) / 1000;
      clockSkewS = Math.abs(skew) > 2 ? skew : 0;
    }
  }
  const serverNow = () => Date.now() / 1000 + clockSkewS;

  // ---- URLs: put the current token in ---------------------------------------------------------------
  /*
   * Replace the token in a URL hls.js is about to load and leave every other byte alone (other query
   * parameters such as LL-HLS `_HLS_msn` keep their exact encoding and order). URLs without a token
   * (cookie and hybrid modes after the master) and URLs on other origins are returned unchanged, so
   * the session token never leaks to a third party.
   *   query mode: …/seg_001.ts?token=OLD&x=1   → …/seg_001.ts?token=NEW&x=1
   *   path mode:  http://gw/t/OLD/pathmode/vod/title/seg_001.ts → http://gw/t/NEW/pathmode/vod/title/seg_001.ts
   */
  function withCurrentToken(url, token) {
    let parsed;
    try { parsed = new URL(url, location.href); } catch { return url; }
    if (parsed.origin !== GATEWAY_ORIGIN || !token) return url;

    const hashAt = url.indexOf('#');
    const hash = hashAt >= 0 ? url.slice(hashAt) : '';
    const beforeHash = hashAt >= 0 ? url.slice(0, hashAt) : url;
    const queryAt = beforeHash.indexOf('?');
    let path = queryAt >= 0 ? beforeHash.slice(0, queryAt) : beforeHash;
    let query = queryAt >= 0 ? beforeHash.slice(queryAt + 1) : null;

    if (query !== null) {
      query = query.split('&').map((pair) => {
        const name = pair.split('=', 1)[0];
        return safeDecode(name) === TOKEN_PARAM ? `${name}=${encodeURIComponent(token)}` : pair;
      }).join('&');
    }
    // Path mode: the token is the first path segment after `/t/`; relative URIs in the playlists inherit it.
    const pathTokenAt = parsed.origin.length + '/t/'.length;
    if (path.startsWith(parsed.origin + '/t/') && path.indexOf('/', pathTokenAt) > pathTokenAt) {
      path = path.slice(0, pathTokenAt) + encodeURIComponent(token) + path.slice(path.indexOf('/', pathTokenAt));
    }
    return path + (query !== null ? '?' + query : '') + hash;
  }

  function safeDecode(text) {
    try { return decodeURIComponent(text.replace(/\+/g, ' ')); } catch { return text; }
  }

  const shortPath = (url) => {
    try { return new URL(url, location.href).pathname; } catch { return url; }
  };

  // ---- xhrSetup: every playlist, key and segment request ----------------------------------------------
  /*
   * hls.js calls this once per request attempt (retries included) before the XHR is sent; it may
   * return a promise. We open the XHR ourselves with the rewritten URL, which is the only way to
   * change the URL from here. Never throw: hls.js would call us again with the original URL.
   */
  function xhrSetup(xhr, url, context) {
    const send = () => {
      const sent = session && !RENEW_OFF ? withCurrentToken(url, session.token) : url;
      xhr.open('GET', sent, true);
      if (sendsCredentials(sent)) xhr.withCredentials = true;
      watchForDenial(xhr, context, sent);
    };
    if (session && tokenNeedsRenewal()) {
      // The token is (nearly) expired, e.g. after a long pause, or a request was just refused as
      // `expired`: renew first, then send. A failed refresh is shown; the request goes out anyway.
      return refreshToken(session.stale ? 'expired_retry' : 'before_request').catch(() => {}).then(send);
    }
    send();
    return undefined;
  }

  function tokenNeedsRenewal() {
    // The margin never exceeds the part of the life after the scheduled refresh (short test TTLs).
    const margin = Math.min(EXPIRY_MARGIN_S, (session.expiresAt - session.issuedAt) * (1 - REFRESH_AT));
    return session.canRefresh && !RENEW_OFF &&
      (session.stale || (RENEW_AHEAD && session.expiresAt - serverNow() < margin));
  }

  /*
   * Our listener is added before hls.js sets `onreadystatechange`, so it runs first: the denial is
   * recorded (and a retry arranged) before hls.js decides what to do with the error.
   */
  function watchForDenial(xhr, context, sentUrl) {
    xhr.addEventListener('readystatechange', () => {
      if (xhr.readyState !== 4) return;
      if (xhr.status >= 200 && xhr.status < 300) { retriedOnce.delete(context.url); return; }
      if (xhr.status !== 401 && xhr.status !== 403) return;
      const body = parseErrorBody(xhr);
      const reason = xhr.getResponseHeader('x-token-denial') || body.error || `http_${xhr.status}`;
      handleRefusal({ status: xhr.status, reason, detail: body.detail || '', url: sentUrl, key: context.url });
    });
  }

  /*
   * A media request refused (any player): show it; `revoked` and `stream_limit` (this stream was ended to
   * admit another of the account's, `[sessions] on_limit = "evict_oldest"`) stop playback. An `expired` marks the token
   * stale, once per request `key` (players may build a new request object for a retry, so count by URL),
   * so the retry's request hook refreshes before it sends; a second `expired` right after a refresh is a
   * real failure, e.g. a clock far off, and is left to the player. Returns whether a retry is arranged.
   */
  function handleRefusal({ status, reason, detail, url, key }) {
    recordDenial({ source: 'media request', status, reason, detail, url });
    if ((reason === 'revoked' || reason === 'stream_limit') && session) stopPlayback(session, reason);   // no refresh can help now
    // renew=off: nothing renews the session, so an `expired` at or past the session's cap ends it.
    if (reason === 'expired' && RENEW_OFF && session && serverNow() >= session.sessionEndsAt - 1) {
      stopPlayback(session, 'session_ended');
    }
    if (reason === 'expired' && !RENEW_OFF && session && session.canRefresh && !retriedOnce.has(key)) {
      retriedOnce.add(key);
      session.stale = true;                 // the retry's request hook refreshes before sending
      expiredRetries.add(key);              // read by hls.js's shouldRetry() below
      emit('expired_retry', { url });
      return true;
    }
    return false;
  }

  // The request hooks of dash.js and shaka (hls.js: xhrSetup above): renew first when the token is
  // (nearly) expired or was just refused, then put the current token into the URL.
  async function currentUrl(url) {
    if (session && tokenNeedsRenewal()) {
      await refreshToken(session.stale ? 'expired_retry' : 'before_request').catch(() => {});
    }
    return session && !RENEW_OFF ? withCurrentToken(url, session.token) : url;
  }

  // Cross-site cookie modes: send (and accept) the gateway's cookie; never to other hosts.
  const sendsCredentials = (url) => Boolean(session && COOKIE_MODES.has(session.mode) && isGatewayUrl(url));

  function parseErrorBody(xhr) {
    try {
      let text = '';
      if (xhr.responseType === '' || xhr.responseType === 'text') text = xhr.responseText;
      else if (xhr.response instanceof ArrayBuffer) text = new TextDecoder().decode(xhr.response);
      return JSON.parse(text) || {};
    } catch { return {}; }
  }

  /*
   * hls.js never retries a 4xx on its own. This hook (RetryConfig.shouldRetry) lets exactly the
   * requests refused as `expired` be retried once; the retry runs xhrSetup again with the new token.
   */
  function shouldRetry(retryConfig, retryCount, isTimeout, response, retry) {
    if (response && response.code === 403 && expiredRetries.delete(response.url)) return true;
    return retry;
  }

  function loadPolicies() {
    const policies = {};
    for (const name of ['manifestLoadPolicy', 'playlistLoadPolicy', 'fragLoadPolicy', 'keyLoadPolicy']) {
      const base = Hls.DefaultConfig[name].default;
      const errorRetry = { ...(base.errorRetry || { maxNumRetry: 0, retryDelayMs: 0, maxRetryDelayMs: 0 }), shouldRetry };
      policies[name] = { default: { ...base, errorRetry } };
    }
    return policies;
  }

  // ---- Token refresh ------------------------------------------------------------------------------------
  function refreshToken(trigger) {
    if (!session || !session.canRefresh) return Promise.reject(new Error('no refreshable session'));
    if (inFlightRefresh) return inFlightRefresh;
    const current = session;
    inFlightRefresh = (async () => {
      clearTimeout(refreshTimer);
      let response;
      try {
        response = await fetch(gatewayUrl(current.refreshUrl), {
          method: 'POST',
          credentials: credentialsFor(current.mode),   // cookie modes: the response's Set-Cookie renews the cookie
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ token: current.token }),
        });
      } catch (err) {
        refreshFailed(current, trigger, 'network_error', String(err), 0);
        throw err;
      }
      const body = await readJson(response);
      if (current !== session) throw new Error('session replaced');
      if (!response.ok || !body.token) {
        refreshFailed(current, trigger, body.error || `http_${response.status}`, body.detail || '', response.status);
        throw new Error(body.error || `refresh answered ${response.status}`);
      }
      noteServerDate(response);
      current.refreshes += 1;
      current.failures = 0;
      current.stale = false;
      acceptToken(current, body);
      emit('refreshed', { trigger, session_id: current.id, expires_at: current.expiresAt,
        token_life_s: Math.round(current.expiresAt - current.issuedAt), refreshes: current.refreshes });
      // The `expired` refusal that caused this refresh is handled: keep it in the log, not in the banner.
      if (trigger === 'expired_retry' && $('denial').dataset.reason === 'expired') clearDenial();
      scheduleRefresh();
    })().finally(() => { inFlightRefresh = null; });
    return inFlightRefresh;
  }

  function refreshFailed(current, trigger, error, detail, status) {
    if (current !== session) return;
    current.failures += 1;
    const terminal = TERMINAL_REFRESH_ERRORS.has(error) || status === 401;
    const stillValid = current.expiresAt - serverNow() > 1;
    const retryIn = !terminal && stillValid
      ? RETRY_BACKOFF_S[Math.min(current.failures - 1, RETRY_BACKOFF_S.length - 1)] : 0;
    emit('refresh_failed', { trigger, error, detail, status, retry_in_s: retryIn });
    if (terminal) {
      endSession(current, error);
      recordDenial({ source: 'refresh API', status, reason: error, detail });
    } else if (retryIn) {
      refreshTimer = setTimeout(() => refreshToken('retry').catch(() => {}), retryIn * 1000);
    }
  }

  // The gateway refused the session for good: stop renewing and say so in the panel.
  function endSession(target, reason) {
    target.canRefresh = false;
    target.over = reason;
    target.nextRefreshAt = null;
    if (target === session) clearTimeout(refreshTimer);
    renderSession();
  }

  // The gateway refuses this session's media for good: end the session, stop loading and pause. The
  // banner (the gateway's refusal) and the last frame stay on screen; the page itself stays usable.
  function stopPlayback(target, reason) {
    if (target.over) return;   // already stopped (several in-flight requests may be refused)
    endSession(target, reason);
    if (target !== session) return;
    if (engine) engine.stopLoad();
    video.pause();
    emit('playback_stopped', { session_id: target.id, reason });
  }

  function acceptToken(target, body) {
    target.token = body.token;
    target.expiresAt = Number(body.expires_at);
    target.sessionEndsAt = Number(body.session_ends_at ?? target.sessionEndsAt);
    target.issuedAt = serverNow();
    // A token that already runs to the session's end cannot be extended: nothing to schedule.
    target.canRefresh = Boolean(target.refreshUrl) && target.expiresAt < target.sessionEndsAt;
    renderSession();
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if (!session) return;
    if (!session.canRefresh) {
      emit('refresh_not_needed', { session_id: session.id });
      session.nextRefreshAt = null;
      return;
    }
    if (!RENEW_AHEAD) {
      session.nextRefreshAt = null;
      return;
    }
    const life = Math.max(0, session.expiresAt - session.issuedAt);
    session.nextRefreshAt = session.issuedAt + life * REFRESH_AT;
    const delayMs = Math.max(0, (session.nextRefreshAt - serverNow()) * 1000);
    // Timers in background tabs are throttled; the `play` handler and xhrSetup catch up if it is late.
    refreshTimer = setTimeout(() => refreshToken('scheduled').catch(() => {}), delayMs);
  }

  // ---- Session lifecycle ------------------------------------------------------------------------------
  async function startSession(user, asset) {
    await stopSession({ revoke: true, quiet: true });
    clearDenial();
    setBusy(true);
    let response;
    try {
      response = await fetch(gatewayUrl('/api/sessions'), {
        method: 'POST',
        credentials: credentialsFor(modeOf(asset).name),   // cookie modes: the response sets the cookie
        headers: { 'Authorization': `Bearer ${user}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ asset }),
      });
    } catch (err) {
      setBusy(false);
      recordDenial({ source: 'session API', status: 0, reason: 'network_error', detail: String(err) });
      return;
    }
    const body = await readJson(response);
    setBusy(false);
    if (response.status !== 201 && response.status !== 200) {
      recordDenial({ source: 'session API', status: response.status,
        reason: body.error || `http_${response.status}`, detail: body.detail || '' });
      return;
    }
    noteServerDate(response);
    session = {
      id: body.session_id, user, asset, mode: body.mode || modeOf(asset).name,
      playbackUrl: body.playback_url, refreshUrl: body.refresh_url, titlePrefix: body.title_prefix,
      token: '', expiresAt: 0, sessionEndsAt: 0, issuedAt: 0, canRefresh: false,
      refreshes: 0, failures: 0, stale: false, nextRefreshAt: null, over: null,
    };
    acceptToken(session, body);
    T.session = { id: session.id, mode: session.mode, asset, user };
    emit('session_started', { session_id: session.id, mode: session.mode, asset,
      expires_at: session.expiresAt, session_ends_at: session.sessionEndsAt,
      token_life_s: Math.round(session.expiresAt - session.issuedAt) });
    scheduleRefresh();
    $('stop').disabled = false;
    $('refresh-now').disabled = !session.canRefresh;
    play(gatewayUrl(session.playbackUrl));
  }

  async function stopSession({ revoke, quiet = false }) {
    clearTimeout(refreshTimer);
    expiredRetries.clear();
    retriedOnce.clear();
    if (engine) { engine.destroy(); engine = null; }
    T.levels = [];
    video.removeAttribute('src');
    video.load();
    const ended = session;
    session = null;
    renderSession();
    renderLevels();
    $('stop').disabled = true;
    $('refresh-now').disabled = true;
    if (!ended || !revoke) return;
    try {
      const response = await fetch(gatewayUrl(`/api/sessions/${encodeURIComponent(ended.id)}`), {
        method: 'DELETE',
        credentials: credentialsFor(ended.mode),
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ token: ended.token }),
      });
      if (response.ok) emit('revoked', { session_id: ended.id });
      else if (!quiet) {
        const body = await readJson(response);
        emit('revoke_failed', { session_id: ended.id, status: response.status, error: body.error });
      }
    } catch (err) {
      if (!quiet) emit('revoke_failed', { session_id: ended.id, error: String(err) });
    }
  }

  // ---- Players ------------------------------------------------------------------------------------------
  /*
   * One page, three players, chosen in the form (`?player=`): hls.js plays HLS, dash.js plays DASH,
   * shaka-player plays both; `auto` picks hls.js or dash.js by the manifest. Each adapter below hands the
   * page the same engine, {levels, auto, manual, select(index), stopLoad(), destroy()} (levels: the video
   * renditions, lowest bitrate first), and reports into the same places: T.errors (every player error
   * event), T.frags (video segments loaded, by level), T.switched (the level now showing) and the token
   * events. Each player's own request hook puts the current token into every request it makes:
   *   hls.js   xhrSetup (above)
   *   dash.js  addRequestInterceptor (dash.js 5; the v4 RequestModifier is gone) and addResponseInterceptor
   *   shaka    getNetworkingEngine().registerRequestFilter
   */
  const PLAYERS = {
    hlsjs: { label: 'hls.js', script: '/players/vendor/hls.min.js', formats: ['hls'], start: startHlsJs },
    dashjs: { label: 'dash.js', script: '/players/vendor/dash.all.min.js', formats: ['dash'], start: startDashJs },
    shaka: { label: 'shaka-player', script: '/players/vendor/shaka-player.compiled.js', formats: ['hls', 'dash'], start: startShaka },
  };
  const formatOf = (url) => (new URL(url, location.href).pathname.endsWith('.mpd') ? 'dash' : 'hls');
  const playerFor = (choice, format) => (PLAYERS[choice] ? choice : format === 'dash' ? 'dashjs' : 'hlsjs');
  const scripts = new Map();   // src → promise: each player's script is loaded once, when first chosen

  function loadScript(src) {
    if (!scripts.has(src)) {
      scripts.set(src, new Promise((resolve, reject) => {
        const script = document.createElement('script');
        script.src = src;
        script.onload = resolve;
        script.onerror = () => { scripts.delete(src); reject(new Error(`${src} did not load (run npm ci in players/)`)); };
        document.head.append(script);
      }));
    }
    return scripts.get(src);
  }

  async function play(url) {
    const format = formatOf(url);
    const name = playerFor($('player').value, format);
    const spec = PLAYERS[name];
    if (!spec.formats.includes(format)) {
      recordDenial({ source: 'page', status: 0, reason: 'player_unavailable',
        detail: `${spec.label} does not play ${format.toUpperCase()}: choose ${Object.values(PLAYERS)
          .filter((p) => p.formats.includes(format)).map((p) => p.label).join(' or ')}` });
      return;
    }
    if (!window.MediaSource && !window.ManagedMediaSource) {
      recordDenial({ source: 'page', status: 0, reason: 'no_mse', detail: 'this browser has no Media Source Extensions' });
      return;
    }
    const current = session;
    try {
      await loadScript(spec.script);
    } catch (err) {
      recordDenial({ source: 'page', status: 0, reason: 'player_not_loaded', detail: String(err.message || err) });
      return;
    }
    if (current !== session) return;   // stopped or replaced while the script loaded
    T.session.player = name;
    $('s-player').textContent = spec.label;
    engine = spec.start(url);
  }

  function playerError(entry) {
    const full = { ...entry, media_time: video.currentTime, at: new Date().toISOString() };
    T.errors.push(full);
    if (!KNOWN_BENIGN.has(entry.details) || entry.fatal) {
      emit('player_error', { player: entry.player, error_type: entry.type, details: entry.details,
        fatal: entry.fatal, code: entry.code, url: entry.url });
    }
    if (entry.fatal && $('denial').hidden) {
      // A fatal error without a token denial (those are already on screen): show it too.
      showDenial({ source: 'player', status: entry.code || '', reason: entry.details,
        detail: `${entry.player} stopped: ${entry.type}${entry.url ? ' on ' + shortPath(entry.url) : ''}` });
    }
  }

  // The levels a player offers, as the page shows them: video renditions, lowest bitrate first.
  const toLevels = (list) => list.map((l) => ({ height: l.height || 0, width: l.width || 0, bitrate: l.bitrate }))
    .sort((a, b) => a.bitrate - b.bitrate).map((l, index) => ({ index, ...l, label: levelLabel(l) }));
  const levelByHeight = (height) => T.levels.findIndex((l) => l.height === height);

  function levelShown(index) {
    T.switched.push(index);
    const level = T.levels[index];
    $('playing-level').textContent = level ? `playing ${level.label}` : '';
    emit('level_switched', { level: index, label: level ? level.label : '?' });
    renderLevels();
  }

  function manifestReady(levels) {
    T.levels = levels;
    renderLevels();
    video.play().catch(() => {});   // muted, so autoplay is allowed
  }

  // `?level=N` pins a level from the start; `?buffer=S` asks for S seconds of forward buffer and the least
  // back buffer, so segments are fetched progressively and a seek back fetches them again.
  const startLevel = params.has('level') ? Number(params.get('level')) : undefined;
  const bufferS = params.has('buffer') ? Number(params.get('buffer')) : null;

  function startHlsJs(url) {
    if (!Hls.isSupported()) {
      recordDenial({ source: 'page', status: 0, reason: 'no_mse', detail: 'hls.js cannot play in this browser' });
      return null;
    }
    const buffering = bufferS === null ? {} : { maxBufferLength: bufferS, maxMaxBufferLength: bufferS, backBufferLength: 0 };
    const hls = window.hls = new Hls({ xhrSetup, startLevel, ...buffering, ...loadPolicies() });
    const byHls = [];   // hls.js level index → page level index (the same order unless hls.js sorts otherwise)
    hls.on(Hls.Events.ERROR, (_, d) => {
      const url = (d.frag && d.frag.url) || d.url || (d.context && d.context.url) || '';
      playerError({ player: 'hls.js', type: d.type, details: d.details, fatal: d.fatal,
        code: d.response ? d.response.code : undefined, url });
      if (d.fatal && d.type === Hls.ErrorTypes.MEDIA_ERROR && !hls.recoveredOnce) {
        hls.recoveredOnce = true;
        hls.recoverMediaError();
      }
    });
    hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => {
      const levels = toLevels(d.levels);
      d.levels.forEach((l, i) => { byHls[i] = levels.findIndex((x) => x.bitrate === l.bitrate && x.height === (l.height || 0)); });
      // `?level=N` pins a level from the start (startLevel alone would let ABR move away from it).
      if (startLevel !== undefined && startLevel >= 0 && startLevel < d.levels.length) hls.currentLevel = byHls.indexOf(startLevel);
      manifestReady(levels);
    });
    hls.on(Hls.Events.FRAG_LOADED, (_, d) => {
      T.frags.push({ level: d.frag.type === 'main' ? byHls[d.frag.level] : d.frag.level, type: d.frag.type, sn: d.frag.sn, url: d.frag.url });
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => levelShown(byHls[d.level]));
    hls.loadSource(url);
    hls.attachMedia(video);
    return {
      get auto() { return hls.autoLevelEnabled; },
      get manual() { return byHls[hls.manualLevel] ?? -1; },
      select(index) { hls.currentLevel = index < 0 ? -1 : byHls.indexOf(index); },   // immediate (flushes the buffer)
      stopLoad() { hls.stopLoad(); },
      destroy() { hls.destroy(); window.hls = null; },
    };
  }

  /*
   * dash.js 5: a request interceptor gets every request (MPD, init, segments, retries) before it is sent
   * and may return it changed, asynchronously; a response interceptor sees every response, refusals
   * included, before dash.js acts on it. dash.js retries a failed download by itself (retryAttempts), and
   * that retry passes through the request interceptor again: after a `403 expired` it refreshes first.
   */
  function startDashJs(url) {
    const player = window.player = dashjs.MediaPlayer().create();
    const pinned = startLevel !== undefined && startLevel >= 0;
    const streaming = {
      // Pinned: no ABR, and start at the lowest rendition (a start bitrate below every Representation's).
      abr: pinned ? { autoSwitchBitrate: { video: false }, initialBitrate: { video: 1 } } : {},
    };
    if (bufferS !== null) {
      streaming.buffer = { bufferTimeDefault: bufferS, bufferTimeAtTopQuality: bufferS,
        bufferTimeAtTopQualityLongForm: bufferS, bufferToKeep: 1, bufferPruningInterval: 1 };
    }
    player.updateSettings({ streaming });
    player.addRequestInterceptor(async (request) => {
      request.url = await currentUrl(request.url);
      if (sendsCredentials(request.url)) request.credentials = 'include';
      return request;
    });
    player.addResponseInterceptor(async (response) => {
      const sent = response.request ? response.request.url : response.url;
      const headers = response.headers || {};
      if (response.status >= 200 && response.status < 300) retriedOnce.delete(shortPath(sent));
      else if (response.status === 401 || response.status === 403) {
        const body = parseJsonBytes(response.data);
        handleRefusal({ status: response.status, reason: headers['x-token-denial'] || body.error || `http_${response.status}`,
          detail: body.detail || '', url: sent, key: shortPath(sent) });
      }
      return response;
    });
    const events = dashjs.MediaPlayer.events;
    const videoReps = () => player.getRepresentationsByType('video') || [];
    const levelOfRep = (rep) => (rep ? levelByHeight(rep.height) : -1);
    const repLevels = () => toLevels(videoReps().map((r) => ({ height: r.height, width: r.width, bitrate: r.bandwidth })));
    player.on(events.STREAM_INITIALIZED, () => {
      manifestReady(repLevels());
      if (pinned) engineApi.select(startLevel);
    });
    player.on(events.FRAGMENT_LOADING_COMPLETED, (e) => {
      const r = e.request || {};
      if (r.mediaType !== 'video' || r.type !== 'MediaSegment') return;
      if (!T.levels.length) T.levels = repLevels();   // a segment may complete before STREAM_INITIALIZED
      const rep = r.representation || videoReps().find((x) => x.id === r.representationId);
      T.frags.push({ level: levelOfRep(rep), type: 'main', sn: r.index, url: r.url });
    });
    player.on(events.QUALITY_CHANGE_RENDERED, (e) => {
      if (e.mediaType === 'video') levelShown(levelOfRep(e.newRepresentation));
    });
    player.on(events.ERROR, (e) => {
      const err = e.error || {};
      // dash.js raises ERROR once its own retries are spent: the download, the manifest or the media failed.
      playerError({ player: 'dash.js', type: 'dashjs', details: `dashjs_${err.code}`, fatal: true, code: err.code,
        url: err.data && err.data.request ? err.data.request.url : '', message: String(err.message || '').slice(0, 200) });
    });
    player.on(events.PLAYBACK_ERROR, (e) => {
      playerError({ player: 'dash.js', type: 'media', details: 'playback_error', fatal: true, message: String(e.error || '').slice(0, 200) });
    });
    let manual = pinned ? startLevel : -1;
    const engineApi = {
      get auto() { return manual < 0; },
      get manual() { return manual; },
      select(index) {
        manual = index;
        player.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: index < 0 } } } });
        const level = T.levels[index];
        const rep = level && videoReps().find((r) => r.height === level.height && r.bandwidth === level.bitrate);
        if (rep) player.setRepresentationForTypeById('video', rep.id, true);   // forceReplace: switch now
      },
      stopLoad() { player.reset(); },
      destroy() { player.destroy(); window.player = null; },
    };
    player.initialize(video, url, true);
    return engineApi;
  }

  /*
   * shaka-player: a request filter runs before every request (manifest, segments, keys, retries) and may
   * return a promise. shaka does not retry a 401/403 (it reports them as critical), so renewal ahead of
   * expiry and the check before each request are what keep the token fresh; a refusal is still shown.
   */
  function startShaka(url) {
    shaka.polyfill.installAll();
    const player = window.player = new shaka.Player();
    const pinned = startLevel !== undefined && startLevel >= 0;
    const config = { abr: pinned ? { enabled: false, defaultBandwidthEstimate: 1 } : {} };
    if (bufferS !== null) config.streaming = { bufferingGoal: bufferS, rebufferingGoal: Math.min(2, bufferS), bufferBehind: 1 };
    player.configure(config);
    const net = player.getNetworkingEngine();
    net.registerRequestFilter(async (type, request) => {
      request.uris = await Promise.all(request.uris.map(currentUrl));
      if (request.uris.some(sendsCredentials)) request.allowCrossSiteCredentials = true;
    });
    const isVideo = (context) => context && context.stream && context.stream.type === 'video';
    const videoTracks = () => player.getVideoTracks();
    const trackLevels = () => toLevels(videoTracks().map((t) => ({ height: t.height, width: t.width, bitrate: t.bandwidth })));
    player.addEventListener('downloadcompleted', (e) => {
      if (e.requestType === shaka.net.NetworkingEngine.RequestType.SEGMENT && isVideo(e.context)) {
        if (!T.levels.length) T.levels = trackLevels();   // segments may arrive before load() resolves
        T.frags.push({ level: levelByHeight(e.context.stream.height), type: 'main', url: e.response.uri });
      }
      retriedOnce.delete(shortPath(e.response.uri));
    });
    let shown = null;
    const noteShown = () => {
      const active = videoTracks().find((t) => t.active);
      const index = active ? levelByHeight(active.height) : -1;
      if (index >= 0 && index !== shown) { shown = index; levelShown(index); }
    };
    player.addEventListener('variantchanged', noteShown);
    player.addEventListener('adaptation', noteShown);
    player.addEventListener('error', (e) => shakaError(e.detail));
    let manual = pinned ? startLevel : -1;
    const engineApi = {
      get auto() { return manual < 0; },
      get manual() { return manual; },
      select(index) {
        manual = index;
        player.configure({ abr: { enabled: index < 0 } });
        const level = T.levels[index];
        const track = level && videoTracks().find((t) => t.height === level.height);
        if (track) player.selectVideoTrack(track, true, 2);   // clear the buffer but 2 s: switch soon
      },
      stopLoad() { player.unload().catch(() => {}); },
      destroy() { player.destroy().catch(() => {}); window.player = null; },
    };
    (async () => {
      await player.attach(video);
      try {
        await player.load(url);
      } catch (err) {
        shakaError(err);
        return;
      }
      manifestReady(trackLevels());
      if (pinned) engineApi.select(startLevel);
      noteShown();
    })();
    return engineApi;
  }

  // shaka errors: BAD_HTTP_STATUS (1001) carries [uri, status, body, headers, type]: a refusal is shown as one.
  function shakaError(err) {
    const d = err || {};
    const data = Array.isArray(d.data) ? d.data : [];
    const url = typeof data[0] === 'string' ? data[0] : '';
    const status = d.code === 1001 ? Number(data[1]) : undefined;
    if (status === 401 || status === 403) {
      const headers = data[3] || {};
      const body = parseJsonText(typeof data[2] === 'string' ? data[2] : '');
      handleRefusal({ status, reason: headers['x-token-denial'] || body.error || `http_${status}`,
        detail: body.detail || '', url, key: shortPath(url) });
    }
    playerError({ player: 'shaka-player', type: `category_${d.category}`, details: `shaka_${d.code}`,
      fatal: d.severity === 2, code: status || d.code, url });
  }

  function parseJsonText(text) {
    try { return JSON.parse(text) || {}; } catch { return {}; }
  }

  function parseJsonBytes(data) {
    if (typeof data === 'string') return parseJsonText(data);
    try { return parseJsonText(new TextDecoder().decode(data)); } catch { return {}; }
  }

  const rate = Number(params.get('rate') || 1);
  function applyRate() {
    if (rate > 0 && rate !== 1) { video.defaultPlaybackRate = rate; video.playbackRate = rate; }
  }
  video.addEventListener('loadedmetadata', applyRate);
  video.addEventListener('playing', applyRate);  // a player may reset the rate when it (re)starts playback
  video.addEventListener('play', () => {
    // Back from a long pause: make sure the token is alive before the player asks for more.
    if (session && tokenNeedsRenewal()) refreshToken('resume').catch(() => {});
  });

  // ---- Quality switcher -------------------------------------------------------------------------------
  const levelLabel = (l) => (l.height ? `${l.height}p` : `${Math.round(l.bitrate / 1000)}k`);

  function renderLevels() {
    const box = $('quality-buttons');
    box.replaceChildren();
    if (!engine || !T.levels.length) {
      box.innerHTML = '<em class="muted">starts with the session</em>';
      $('playing-level').textContent = '';
      return;
    }
    const choices = [{ index: -1, label: 'Auto' }].concat(T.levels);
    for (const choice of choices) {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = choice.label;
      button.dataset.level = String(choice.index);
      const selected = choice.index === -1 ? engine.auto : !engine.auto && engine.manual === choice.index;
      button.className = selected ? 'selected' : '';
      button.title = choice.index === -1 ? 'Let the player pick by bandwidth' : `${Math.round(choice.bitrate / 1000)} kbit/s`;
      button.addEventListener('click', () => {
        engine.select(choice.index);   // -1 = ABR
        emit('level_selected', { level: choice.index, label: choice.label });
        renderLevels();
      });
      box.append(button);
    }
  }

  // ---- Session panel ------------------------------------------------------------------------------------
  function renderSession() {
    const s = session;
    $('s-id').textContent = s ? s.id : '–';
    $('s-mode').textContent = s ? s.mode : '–';
    if (!s) $('s-player').textContent = '–';
    $('s-user').textContent = s ? s.user : '–';
    $('s-prefix').textContent = s && s.titlePrefix ? s.titlePrefix : '–';
    $('s-token').textContent = s ? `${s.token.slice(0, 12)}… (${s.token.length} chars)` : '–';
    $('s-refreshes').textContent = s ? String(s.refreshes) : '0';
    if (s) $('refresh-now').disabled = !s.canRefresh;
    tick();
  }

  function tick() {
    const s = session;
    if (!s) {
      for (const id of ['s-ttl', 's-next', 's-end']) $(id).textContent = '–';
      $('s-ttl-bar').style.width = '0';
      return;
    }
    const now = serverNow();
    const left = s.expiresAt - now;
    const life = Math.max(1, s.expiresAt - s.issuedAt);
    $('s-ttl').textContent = s.over ? `session over (${s.over})`
      : left > 0 ? `${fmtDuration(left)} left (expires ${fmtClock(s.expiresAt)})`
      : RENEW_OFF ? `expired ${fmtDuration(-left)} ago (not renewed: the playlists' tokens carry on)`
      : `expired ${fmtDuration(-left)} ago`;
    $('s-ttl').className = 'countdown' + (s.over || left <= 0 ? ' dead' : left < life * (1 - REFRESH_AT) ? ' low' : '');
    $('s-ttl-bar').style.width = `${Math.max(0, Math.min(100, (left / life) * 100))}%`;
    $('s-next').textContent = s.canRefresh && s.nextRefreshAt ? `in ${fmtDuration(Math.max(0, s.nextRefreshAt - now))}`
      : s.over ? 'none (the session is over)'
      : !s.canRefresh ? 'none (the token already lasts until the session ends)'
      : RENEW_AHEAD ? '–' : RENEW_OFF ? 'never (renew=off: URLs as the playlists give them)'
      : 'only after a 403 expired (renew=reactive)';
    $('s-end').textContent = `${fmtClock(s.sessionEndsAt)} (in ${fmtDuration(Math.max(0, s.sessionEndsAt - now))})`;
  }

  function fmtDuration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? `${h}h ${String(m).padStart(2, '0')}m` : m ? `${m}m ${String(r).padStart(2, '0')}s` : `${r}s`;
  }

  const fmtClock = (epochS) => new Date((epochS - clockSkewS) * 1000).toLocaleTimeString();

  // ---- Catalog and form ------------------------------------------------------------------------------
  // The catalog lists titles by their query-mode path (/vod/… or /live/…); another mode swaps in its
  // mount. VOD and live titles have separate mounts (`modes`, `live_modes`): a mode maps within its family.
  function modeOf(asset) {
    const families = [catalog.modes, catalog.live_modes || []];
    const all = families.flatMap((family) => family.map((m) => ({ ...m, family })));
    const byLength = all.sort((a, b) => b.mount.length - a.mount.length);
    return byLength.find((m) => asset.startsWith(m.mount)) || { name: 'query', mount: '/vod/', family: catalog.modes };
  }

  // null when the title's family has no such mode (live plays in query, cookie and queryparam modes only).
  function assetFor(titleAsset, modeName) {
    const from = modeOf(titleAsset);
    const to = from.family.find((m) => m.name === modeName);
    return to ? to.mount + titleAsset.slice(from.mount.length) : null;
  }

  function fillSelect(select, items, value, label) {
    select.replaceChildren(...items.map((item) => {
      const option = document.createElement('option');
      option.value = value(item);
      option.textContent = label(item);
      return option;
    }));
  }

  async function loadCatalog() {
    const response = await fetch(gatewayUrl('/api/demo/catalog'), { credentials: 'same-origin' });
    if (!response.ok) throw new Error(`catalog answered ${response.status}`);
    catalog = await response.json();
    fillSelect($('user'), catalog.users, (u) => u.credential, (u) => `${u.name} · ${u.country}`);
    fillSelect($('title'), catalog.titles, (t) => t.asset, (t) => t.name);
    fillSelect($('mode'), catalog.modes, (m) => m.name, (m) => `${m.name} (${m.mount})`);
  }

  function applyParams() {
    if (params.get('user')) ensureOption($('user'), params.get('user'));
    const asset = params.get('asset');
    if (asset) {
      const mode = modeOf(asset);
      const queryMount = (mode.family.find((m) => m.name === 'query') || mode).mount;
      const titleAsset = queryMount + asset.slice(mode.mount.length);
      ensureOption($('title'), titleAsset);
      $('mode').value = mode.name;
    }
    if (params.get('mode')) ensureOption($('mode'), params.get('mode'));
    if (PLAYERS[params.get('player')]) $('player').value = params.get('player');
  }

  function ensureOption(select, value) {
    if (![...select.options].some((o) => o.value === value)) {
      const option = document.createElement('option');
      option.value = option.textContent = value;
      select.append(option);
    }
    select.value = value;
  }

  function setBusy(busy) { $('start').disabled = busy; }

  $('session-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const asset = assetFor($('title').value, $('mode').value);
    if (asset) {
      startSession($('user').value, asset);
    } else {
      const offered = modeOf($('title').value).family.map((m) => m.name).join(', ');
      recordDenial({ source: 'page', status: 0, reason: 'mode_unavailable',
        detail: `this title plays in these delivery modes only: ${offered}` });
    }
  });
  $('refresh-now').addEventListener('click', () => refreshToken('manual').catch(() => {}));
  $('stop').addEventListener('click', () => stopSession({ revoke: true }));
  setInterval(tick, 250);

  // Hooks for tests and the console.
  window.gatewayDemo = { startSession, stopSession, refreshToken, withCurrentToken, get session() { return session; } };

  loadCatalog()
    .catch((err) => recordDenial({ source: 'catalog', status: 0, reason: 'catalog_unavailable', detail: String(err) }))
    .then(() => {
      applyParams();
      if (params.get('autostart') === '1') $('session-form').requestSubmit();
    });
})();

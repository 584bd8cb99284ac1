/*
 * Streaming gateway: the plain player page. Any player, no token logic.
 *
 *   /players/plain.html?player=shaka|dashjs|hlsjs&src=<URL-encoded gateway URL>[&rate=R][&buffer=S]
 *
 * Plays `src` exactly as given: no refresh API, no request filters or interceptors, no xhrSetup, no
 * retry policy of ours. This is how shaka-player, dash.js, Safari, a smart TV or ffmpeg use a
 * gateway URL, so what keeps the session alive here is the gateway alone: in query mode it writes a
 * token into every URI of every manifest it serves, and the media tokens in a manifest the player loads
 * only once (VOD playlists, static MPDs) last until the session's cap.
 *
 * It only *observes* (window.T, for tests and the console):
 *   T.http    [{url, status, kind, at_ms}]  every response the player reports (shaka downloadcompleted /
 *             downloadfailed, dash.js HttpList metrics, hls.js networkDetails and ERROR responses)
 *   T.errors  [{...player's error, at_ms, media_time}]  every error event, fatal or not
 *   T.state   {currentTime, duration, ended, paused, videoHeight, rate}  updated on media events
 * Errors and HTTP statuses >= 400 are also logged as console.info('plain-player', json).
 *
 * `buffer=S`: S seconds of forward buffer and as little back buffer as the player allows, so segments
 * are fetched progressively and a seek back fetches them again (the browser tests use it).
 *
 * Plain browser JavaScript, no build step. The players come from the gateway at /players/vendor/.
 */
(function () {
  'use strict';

  const PLAYERS = {
    hlsjs: { label: 'hls.js', script: '/players/vendor/hls.min.js', start: startHlsJs },
    shaka: { label: 'shaka-player', script: '/players/vendor/shaka-player.compiled.js', start: startShaka },
    dashjs: { label: 'dash.js', script: '/players/vendor/dash.all.min.js', start: startDashJs },
  };
  const BACK_BUFFER_S = 1;  // the least back buffer we ask for (hls.js keeps at least one segment anyway)

  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  const video = $('video');
  const rate = Number(params.get('rate') || 1);
  const buffer = params.has('buffer') ? Number(params.get('buffer')) : null;

  const T = (window.T = { player: null, src: null, http: [], errors: [], events: [], state: {} });

  function log(type, data) {
    const entry = { type, at_ms: Date.now(), ...data };
    T.events.push(entry);
    const item = document.createElement('li');
    const time = document.createElement('time');
    time.textContent = new Date(entry.at_ms).toISOString().slice(11, 19);
    const text = document.createElement('span');
    text.textContent = `${type} ${JSON.stringify(data)}`;
    item.append(time, text);
    $('log').prepend(item);
    while ($('log').children.length > 60) $('log').lastChild.remove();
  }

  function http(url, status, kind) {
    const entry = { url: String(url || ''), status: Number(status) || 0, kind: kind || '', at_ms: Date.now() };
    T.http.push(entry);
    if (entry.status >= 400) {
      console.info('plain-player', JSON.stringify({ http: entry }));
      log('http_error', { status: entry.status, path: pathOf(entry.url) });
    }
    const bad = T.http.filter((h) => h.status >= 400).length;
    $('p-requests').textContent = `${T.http.length} (${bad} refused or failed)`;
  }

  function error(details) {
    const entry = { ...details, at_ms: Date.now(), media_time: video.currentTime };
    T.errors.push(entry);
    console.info('plain-player', JSON.stringify({ error: entry }));
    log('error', details);
    $('p-errors').textContent = String(T.errors.length);
  }

  const pathOf = (url) => {
    try { return new URL(url, location.href).pathname; } catch { return String(url); }
  };

  // ---- Media element state ------------------------------------------------------------------------
  function snapshot() {
    T.state = { currentTime: video.currentTime, duration: Number.isFinite(video.duration) ? video.duration : null,
      ended: video.ended, paused: video.paused, videoHeight: video.videoHeight, rate: video.playbackRate };
    const d = T.state.duration;
    $('p-time').textContent = `${video.currentTime.toFixed(1)} s${d ? ` of ${d.toFixed(1)} s` : ''}` +
      (video.ended ? ' (ended)' : '') + (video.videoHeight ? ` · ${video.videoHeight}p` : '');
  }
  function applyRate() {
    if (rate > 0 && rate !== 1) { video.defaultPlaybackRate = rate; video.playbackRate = rate; }
  }
  for (const name of ['timeupdate', 'durationchange', 'ended', 'pause', 'playing', 'seeked', 'resize']) {
    video.addEventListener(name, snapshot);
  }
  video.addEventListener('loadedmetadata', applyRate);
  video.addEventListener('playing', applyRate);  // a player may reset the rate when it (re)starts playback
  video.addEventListener('ended', () => log('ended', { currentTime: video.currentTime }));

  // ---- Players: observation only, plus the buffer sizes asked for --------------------------------------
  function startHlsJs(src) {
    const config = buffer === null ? {} : { maxBufferLength: buffer, maxMaxBufferLength: buffer, backBufferLength: 0 };
    const hls = (window.player = new Hls(config));
    const loaded = [Hls.Events.MANIFEST_LOADED, Hls.Events.LEVEL_LOADED, Hls.Events.AUDIO_TRACK_LOADED,
      Hls.Events.FRAG_LOADED, Hls.Events.KEY_LOADED];
    for (const event of loaded) {
      hls.on(event, (name, d) => {
        const details = d.networkDetails;  // the XHR (or fetch Response) of the load, where hls.js keeps it
        if (details && details.status) http(details.responseURL || details.url || (d.frag && d.frag.url) || d.url, details.status, name);
      });
    }
    hls.on(Hls.Events.ERROR, (name, d) => {
      const url = (d.frag && d.frag.url) || d.url || (d.context && d.context.url) || '';
      if (d.response && d.response.code) http(url, d.response.code, d.details);
      error({ type: d.type, details: d.details, fatal: d.fatal, code: d.response ? d.response.code : undefined, url });
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
    hls.loadSource(src);
    hls.attachMedia(video);
  }

  async function startShaka(src) {
    shaka.polyfill.installAll();
    const player = (window.player = new shaka.Player());
    if (buffer !== null) {
      player.configure({ streaming: { bufferingGoal: buffer, rebufferingGoal: Math.min(2, buffer), bufferBehind: BACK_BUFFER_S } });
    }
    // shaka reports request types as numbers: name them (manifest, segment, key, ...).
    const types = Object.fromEntries(Object.entries(shaka.net.NetworkingEngine.RequestType).map(([k, v]) => [v, k.toLowerCase()]));
    player.addEventListener('downloadcompleted', (e) => http(e.response.uri, e.response.status || 200, types[e.requestType]));
    player.addEventListener('downloadfailed', (e) => {
      if (!e.aborted) http(e.request.uris[0], e.httpResponseCode, types[e.requestType]);
    });
    player.addEventListener('error', (e) => {
      const d = e.detail || {};
      error({ severity: d.severity, category: d.category, code: d.code, data: safeData(d.data) });
    });
    await player.attach(video);
    try {
      await player.load(src);
    } catch (err) {
      error({ severity: err.severity, category: err.category, code: err.code, data: safeData(err.data), during: 'load' });
      return;
    }
    video.play().catch(() => {});
  }

  function startDashJs(src) {
    const player = (window.player = dashjs.MediaPlayer().create());
    if (buffer !== null) {
      player.updateSettings({ streaming: { buffer: { bufferTimeDefault: buffer, bufferTimeAtTopQuality: buffer,
        bufferTimeAtTopQualityLongForm: buffer, bufferToKeep: BACK_BUFFER_S, bufferPruningInterval: 1 } } });
    }
    const events = dashjs.MediaPlayer.events;
    player.on(events.METRIC_ADDED, (e) => {
      if (e.metric === 'HttpList' && e.value && e.value.responsecode !== null) {
        http(e.value.actualurl || e.value.url, e.value.responsecode, String(e.value.type || e.mediaType));
      }
    });
    player.on(events.ERROR, (e) => {
      const err = e.error || {};
      error({ code: err.code, message: String(err.message || '').slice(0, 200) });
    });
    player.initialize(video, src, true);
  }

  // Player error data can hold objects with cycles (requests, responses): keep what serialises.
  function safeData(data) {
    if (!Array.isArray(data)) return data === undefined ? null : String(data).slice(0, 200);
    return data.map((x) => (x === null || ['string', 'number', 'boolean'].includes(typeof x) ? x : String(x).slice(0, 200)));
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = src;
      script.onload = resolve;
      script.onerror = () => reject(new Error(`${src} did not load (run npm ci in players/)`));
      document.head.append(script);
    });
  }

  // ---- Form and start ----------------------------------------------------------------------------------
  $('plain-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams(location.search);
    next.set('player', $('player').value);
    next.set('src', $('src').value.trim());
    location.search = next.toString();
  });

  const chosen = params.get('player') || 'hlsjs';
  const src = params.get('src');
  if (PLAYERS[chosen]) $('player').value = chosen;
  if (src) $('src').value = src;
  if (src && PLAYERS[chosen]) {
    const spec = PLAYERS[chosen];
    T.player = chosen;
    T.src = src;
    $('p-player').textContent = spec.label;
    log('start', { player: chosen, src: pathOf(src), rate, buffer });
    loadScript(spec.script)
      .then(() => spec.start(src))
      .catch((err) => error({ details: 'page', message: String(err) }));
  } else if (src) {
    error({ details: 'unknown_player', message: `player must be one of ${Object.keys(PLAYERS).join(', ')}` });
  }
})();

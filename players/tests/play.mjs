#!/usr/bin/env node
/*
 * Drive the gateway's demo page in Debian's Chromium (playwright-core, no downloaded browser) and print
 * ONE JSON line with what happened. It never asserts: the caller (pytest) does. Exit status is 0 even
 * when playback failed; it is 2 only for bad arguments and 3 when the browser could not run at all.
 *
 *   node players/tests/play.mjs --gateway http://127.0.0.1:8080 --user demo-paid \
 *        --asset /vod/title-9000/master.m3u8 [--mode cookie] [--player hlsjs|dashjs|shaka] [--expect-denial] [--switch-level N]
 *        [--refresh-after-s S] [--idle-s S] [--renew reactive|off] [--screenshot out.png]
 *        [--timeout-ms 30000] [--rate 4] [--min-time 5] [--page http://localhost:8081]
 *        [--watch-s S [--switch-after-s A] [--revoke-after-s R] [--expect-stop]]
 *
 * --player P:     the page's `player=` (default: the page's auto choice, hls.js for HLS and dash.js for DASH).
 * Playback:       waits until video.currentTime > --min-time (default 5 s of media), or the timeout.
 * --switch-level N|top: pins level 0 from the start (`level=0`), waits for 1 s of media, clicks the
 *                 page's button for level N (`top`: the highest) and waits for LEVEL_SWITCHED N, a main
 *                 fragment of level N and currentTime 4 s past the switch point.
 * --refresh-after-s: once S seconds of media have played, presses "Refresh token" and records the old
 *                 and new tokens and how many requests came before. It runs before --switch-level, so
 *                 with both, the switch's requests (a rendition never loaded) show which token they carry.
 * --idle-s S:     after 1 s of media, pauses for S seconds of wall-clock time, then resumes (before any
 *                 --switch-level, whose new requests then show how the page dealt with the token's age).
 * --renew reactive: the page's `renew=reactive` (no refresh ahead of expiry; only after a 403 expired).
 * --renew off:    the page's `renew=off` (no renewal at all: URLs exactly as the playlists give them).
 * --expect-denial: waits for the page's denial box and returns its reason and detail.
 * --page URL:     load the page from this base URL (another site serving the same page files) and make it
 *                 call --gateway (the page's `gateway=` parameter): a cross-site player.
 *
 * Live (--watch-s S): media time does not start at 0 in a live stream, so "played" is measured from where
 *                 hls.js joined. Waits until the video plays, then watches S seconds of WALL time (live runs
 *                 at 1x: pass --rate 1), sampling currentTime, readyState, level and the denial box every
 *                 250 ms into `watch.samples` ({at_ms, ct, rs, paused, height, level, denial}). During it:
 *   --switch-after-s A (with --switch-level N|top): at A s into the watch, clicks the level's button
 *                 (`level=0` pins level 0 from the start, so level N was never loaded before).
 *   --revoke-after-s R: at R s, revokes the session from OUTSIDE the page (Node's fetch: DELETE
 *                 /api/sessions/<id> with its token), as a back office would; the page is not told.
 *   --expect-stop: once the denial box shows, watches 3 s more (the page must stay alive), then ends.
 *                 The outcome is `stopped` when the denial box shows at the end, `played` otherwise.
 *
 * Every request in `requests` has `at_ms` (epoch ms when it was sent). Cookie values are never printed:
 * a request has `cookie` (one was sent) and `cookie_ids` ({name: id}, `id` a short SHA-256 fingerprint of
 * the value); a response that set cookies has `set_cookie: [{name, id, max_age, path}]`, fingerprinted the
 * same way, so a cookie sent can be matched with the response that set it. `cors` is the response's
 * Access-Control-Allow-Origin and -Credentials (null when absent). `screen` is what a viewer
 * reads at the end: the denial banner as rendered (empty when hidden), the session panel's token-life line
 * and whether the video is paused.
 */
import { createHash } from 'node:crypto';
import { launchChromium } from './chromium.mjs';

function parseArgs(argv) {
  const opts = { timeoutMs: 30000, rate: 4, minTime: 5, expectDenial: false, switchLevel: null,
    refreshAfterS: null, idleS: null, renew: null, screenshot: null, mode: null, player: null, page: null,
    watchS: null, switchAfterS: null, revokeAfterS: null, expectStop: false };
  const need = (i) => { if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`); return argv[i + 1]; };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--gateway': opts.gateway = need(i).replace(/\/+$/, ''); i++; break;
      case '--page': opts.page = need(i).replace(/\/+$/, ''); i++; break;
      case '--user': opts.user = need(i); i++; break;
      case '--asset': opts.asset = need(i); i++; break;
      case '--mode': opts.mode = need(i); i++; break;
      case '--player': opts.player = need(i); i++; break;
      case '--expect-denial': opts.expectDenial = true; break;
      case '--switch-level': opts.switchLevel = need(i) === 'top' ? 'top' : Number(need(i)); i++; break;
      case '--refresh-after-s': opts.refreshAfterS = Number(need(i)); i++; break;
      case '--screenshot': opts.screenshot = need(i); i++; break;
      case '--timeout-ms': opts.timeoutMs = Number(need(i)); i++; break;
      case '--rate': opts.rate = Number(need(i)); i++; break;
      case '--min-time': opts.minTime = Number(need(i)); i++; break;
      case '--idle-s': opts.idleS = Number(need(i)); i++; break;
      case '--renew': opts.renew = need(i); i++; break;
      case '--watch-s': opts.watchS = Number(need(i)); i++; break;
      case '--switch-after-s': opts.switchAfterS = Number(need(i)); i++; break;
      case '--revoke-after-s': opts.revokeAfterS = Number(need(i)); i++; break;
      case '--expect-stop': opts.expectStop = true; break;
      case '--help': case '-h':
        process.stdout.write('usage: node play.mjs --gateway URL --user CREDENTIAL --asset PATH [--mode M] [--player P] [--expect-denial]\n' +
          '  [--switch-level N|top] [--refresh-after-s S] [--idle-s S] [--renew reactive|off] [--screenshot PATH]\n' +
          '  [--timeout-ms N] [--rate R] [--min-time S] [--page URL]\n' +
          '  [--watch-s S [--switch-after-s A] [--revoke-after-s R] [--expect-stop]]   (live; details: the comment at the top of this file)\n');
        process.exit(0);
        break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!opts.gateway || !opts.user || !opts.asset) usage('--gateway, --user and --asset are required');
  const watchOnly = [['--switch-after-s', opts.switchAfterS], ['--revoke-after-s', opts.revokeAfterS], ['--expect-stop', opts.expectStop || null]];
  for (const [name, value] of watchOnly) if (value !== null && opts.watchS === null) usage(`${name} needs --watch-s`);
  if (opts.switchAfterS !== null && opts.switchLevel === null) usage('--switch-after-s needs --switch-level');
  return opts;
}

function usage(message) {
  process.stderr.write(`play.mjs: ${message}\n`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const started = Date.now();
const result = {
  ok: false, outcome: null, error: null, gateway: opts.gateway, user: opts.user, asset: opts.asset,
  currentTime: 0, videoHeight: 0, duration: null,
  denial: null, screen: null, T: null, bad_responses: [], failed_requests: [], requests: [], cookies: [], console_errors: [], page_errors: [],
  switch: null, refresh: null, idle: null, watch: null, revoke: null, screenshot: null, elapsed_ms: 0,
};

const STOP_SETTLE_MS = 3000;  // --expect-stop: how long to keep watching after the denial box shows
const SAMPLE_EVERY_MS = 250;

// A short fingerprint: enough to tell two cookie values apart, useless for replaying one.
const fingerprint = (value) => createHash('sha256').update(value).digest('hex').slice(0, 12);

function describeSetCookie(header) {
  const [pair, ...attributes] = header.split(';').map((part) => part.trim());
  const at = pair.indexOf('=');
  const attr = (name) => attributes.find((a) => a.toLowerCase().startsWith(name + '='))?.split('=')[1];
  const maxAge = attr('max-age');
  return { name: pair.slice(0, at), id: fingerprint(pair.slice(at + 1)),
    max_age: maxAge === undefined ? null : Number(maxAge), path: attr('path') ?? null };
}

const pageUrl = new URL((opts.page || opts.gateway) + '/');
if (opts.page) pageUrl.searchParams.set('gateway', opts.gateway);
pageUrl.searchParams.set('user', opts.user);
pageUrl.searchParams.set('asset', opts.asset);
if (opts.mode) pageUrl.searchParams.set('mode', opts.mode);
if (opts.player) pageUrl.searchParams.set('player', opts.player);
pageUrl.searchParams.set('autostart', '1');
if (opts.rate && opts.rate !== 1) pageUrl.searchParams.set('rate', String(opts.rate));
if (opts.switchLevel !== null) pageUrl.searchParams.set('level', '0');
if (opts.renew) pageUrl.searchParams.set('renew', opts.renew);
result.page_url = pageUrl.toString();

const deadline = started + opts.timeoutMs;
const remaining = () => Math.max(1, deadline - Date.now());

let browser;
const pending = [];  // header/body reads still in flight
let requestsSent = 0;
try {
  browser = await launchChromium();
} catch (err) {
  result.outcome = 'browser_failed';
  result.error = String(err && err.message || err).split('\n')[0];
  await finish(3);
}

try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
  // Requests are numbered when they are *sent*; results are listed when their response arrives.
  const sequence = new WeakMap();
  const sentAt = new WeakMap();
  page.on('request', (request) => { sequence.set(request, ++requestsSent); sentAt.set(request, Date.now()); });
  page.on('response', (response) => {
    const request = response.request();
    const url = request.url();
    if (url.startsWith('blob:') || url.startsWith('data:')) return;
    const responseHeaders = response.headers();
    const entry = { seq: sequence.get(request), at_ms: sentAt.get(request), url, method: request.method(),
      status: response.status(), type: request.resourceType(),
      cors: { allow_origin: responseHeaders['access-control-allow-origin'] ?? null,
        allow_credentials: responseHeaders['access-control-allow-credentials'] ?? null } };
    result.requests.push(entry);
    // Raw headers as sent (includes Cookie in Chromium): whether a cookie went out and its fingerprint.
    pending.push(request.allHeaders().then((h) => {
      entry.cookie = Boolean(h.cookie);
      if (h.cookie) {
        entry.cookie_ids = Object.fromEntries(h.cookie.split(';').map((pair) => pair.trim()).filter(Boolean)
          .map((pair) => { const at = pair.indexOf('='); return [pair.slice(0, at), fingerprint(pair.slice(at + 1))]; }));
      }
    }).catch(() => {}));
    // Raw response headers include Set-Cookie (a cookie the gateway issued or re-issued).
    pending.push(response.headersArray().then((headers) => {
      const set = headers.filter((h) => h.name.toLowerCase() === 'set-cookie')
        .flatMap((h) => h.value.split('\n')).map(describeSetCookie);
      if (set.length) entry.set_cookie = set;
    }).catch(() => {}));
    if (response.status() >= 400) {
      const bad = { seq: entry.seq, url, method: request.method(), status: response.status(),
        denial: responseHeaders['x-token-denial'] || null };
      result.bad_responses.push(bad);
      pending.push(response.text().then((t) => { bad.body = t.slice(0, 300); }).catch(() => {}));
    }
  });
  page.on('requestfailed', (request) => {
    const url = request.url();
    // Not a status: hls.js aborts in-flight loads on a level switch (net::ERR_ABORTED), and a CORS
    // block also lands here. The caller decides which failures matter.
    if (!url.startsWith('blob:')) result.failed_requests.push({ url, method: request.method(), failure: request.failure()?.errorText });
  });
  page.on('console', (msg) => { if (msg.type() === 'error') result.console_errors.push(msg.text().slice(0, 300)); });
  page.on('pageerror', (err) => result.page_errors.push(String(err).slice(0, 300)));

  await page.goto(pageUrl.toString(), { waitUntil: 'domcontentloaded', timeout: remaining() });

  if (opts.expectDenial) {
    await page.waitForFunction(() => document.getElementById('denial')?.dataset.reason, null, { timeout: remaining() });
    result.denial = await page.evaluate(() => ({
      reason: document.getElementById('denial-reason').textContent,
      detail: document.getElementById('denial-detail').textContent,
      status: document.getElementById('denial-status').textContent,
      source: document.getElementById('denial').dataset.source,
      visible: !document.getElementById('denial').hidden,
    }));
    result.outcome = 'denied';
    result.ok = true;
  } else if (opts.watchS !== null) {
    await watchLive(page);
  } else {
    if (opts.refreshAfterS !== null) {
      await page.waitForFunction((s) => document.querySelector('video').currentTime > s, opts.refreshAfterS, { timeout: remaining() });
      const before = await page.evaluate(() => {
        const s = window.gatewayDemo.session;
        return { token: s.token, count: s.refreshes, refreshable: s.canRefresh };
      });
      if (!before.refreshable) {
        // e.g. path mode: the token already lives as long as the session, so the page never refreshes.
        result.refresh = { possible: false, old_token: before.token };
      } else {
        await page.click('#refresh-now', { timeout: remaining() });
        // Wait until the refresh is accepted (a gateway that buckets expiries may legitimately return the
        // same token), then note how many requests had been sent by then.
        await page.waitForFunction((n) => window.gatewayDemo.session && window.gatewayDemo.session.refreshes > n, before.count, { timeout: remaining() });
        const after = await page.evaluate(() => window.gatewayDemo.session.token);
        result.refresh = { possible: true, old_token: before.token, new_token: after, sent_before_new_token: requestsSent };
      }
    }
    if (opts.idleS !== null) {
      // A pause in miniature: no requests while paused (everything is buffered), so the token may expire.
      await page.waitForFunction(() => document.querySelector('video').currentTime > 1, null, { timeout: remaining() });
      await page.evaluate(() => document.querySelector('video').pause());
      await page.waitForTimeout(opts.idleS * 1000);
      await page.evaluate(() => document.querySelector('video').play());
      result.idle = { seconds: opts.idleS, sent_before_resume: requestsSent };
    }
    if (opts.switchLevel !== null) {
      await page.waitForFunction(() => document.querySelector('video').currentTime > 1, null, { timeout: remaining() });
      const before = await page.evaluate(() => ({ t: document.querySelector('video').currentTime, frags: window.T.frags.filter((f) => f.type === 'main').map((f) => f.level) }));
      const level = opts.switchLevel === 'top' ? await page.evaluate(() => window.T.levels.length - 1) : opts.switchLevel;
      await page.click(`#quality-buttons button[data-level="${level}"]`, { timeout: remaining() });
      await page.waitForFunction(({ level, t0, minTime }) => {
        const T = window.T, v = document.querySelector('video');
        return T.switched.includes(level) && T.frags.some((f) => f.type === 'main' && f.level === level) && v.currentTime > t0 + minTime;
      }, { level, t0: before.t, minTime: Math.min(opts.minTime, 4) }, { timeout: remaining() });
      result.switch = { level, at_time: before.t, levels_loaded_before: [...new Set(before.frags)] };
    }
    await page.waitForFunction((minTime) => document.querySelector('video').currentTime > minTime || (window.T.errors.some((e) => e.fatal)) ||
      !document.getElementById('denial').hidden, opts.minTime, { timeout: remaining() });
    const playing = await page.evaluate((minTime) => document.querySelector('video').currentTime > minTime, opts.minTime);
    result.outcome = playing ? 'played' : 'stopped';
    result.ok = playing;
  }
  await collect(page);
  if (opts.screenshot) {
    await page.screenshot({ path: opts.screenshot, type: opts.screenshot.endsWith('.jpg') ? 'jpeg' : 'png' });
    result.screenshot = opts.screenshot;
  }
} catch (err) {
  result.outcome = result.outcome || 'timeout_or_error';
  result.error = String(err && err.message || err).split('\n')[0];
  try {
    const page = browser.contexts()[0]?.pages()[0];
    if (page) {
      await collect(page);
      if (opts.screenshot) { await page.screenshot({ path: opts.screenshot }); result.screenshot = opts.screenshot; }
    }
  } catch { /* the page is gone: report what we have */ }
}
await finish(0);

/*
 * Live: wait until the video plays, then watch --watch-s seconds of wall time (see the top of the file).
 * Each sample is one page.evaluate, so a page that hung or crashed ends the watch with an error.
 */
async function watchLive(page) {
  await page.waitForFunction(() => {
    const v = document.querySelector('video');
    return v.currentTime > 0 && !v.paused && v.readyState >= 3 && window.T.frags.length > 0;
  }, null, { timeout: remaining() });
  const sample = () => page.evaluate(() => {
    const v = document.querySelector('video');
    const box = document.getElementById('denial');
    return { at_ms: Date.now(), ct: v.currentTime, rs: v.readyState, paused: v.paused, height: v.videoHeight,
      level: window.hls ? window.hls.currentLevel : null,
      denial: box.hidden ? null : document.getElementById('denial-reason').textContent };
  });
  const first = await sample();
  const watch = result.watch = { start: { at_ms: first.at_ms, currentTime: first.ct }, samples: [first],
    stop_seen_at_ms: null, ended: 'time' };
  const endAt = Math.min(first.at_ms + opts.watchS * 1000, deadline);
  const due = (afterS) => afterS !== null && Date.now() >= first.at_ms + afterS * 1000;
  while (Date.now() < endAt) {
    if (opts.switchAfterS !== null && !result.switch && due(opts.switchAfterS)) await switchLevelNow(page);
    if (opts.revokeAfterS !== null && !result.revoke && due(opts.revokeAfterS)) await revokeFromOutside(page);
    await page.waitForTimeout(SAMPLE_EVERY_MS);
    const now = await sample();
    watch.samples.push(now);
    if (opts.expectStop && now.denial && watch.stop_seen_at_ms === null) watch.stop_seen_at_ms = now.at_ms;
    if (watch.stop_seen_at_ms !== null && now.at_ms - watch.stop_seen_at_ms >= STOP_SETTLE_MS) {
      watch.ended = 'stopped';
      break;
    }
  }
  const last = watch.samples[watch.samples.length - 1];
  watch.media_played_s = last.ct - first.ct;
  watch.wall_s = (last.at_ms - first.at_ms) / 1000;
  result.outcome = last.denial ? 'stopped' : watch.media_played_s > 0 ? 'played' : 'stalled';
  result.ok = result.outcome === (opts.expectStop ? 'stopped' : 'played');
}

async function switchLevelNow(page) {
  const before = await page.evaluate(() => ({ t: document.querySelector('video').currentTime,
    frags: window.T.frags.filter((f) => f.type === 'main').map((f) => f.level), levels: window.T.levels.length }));
  const level = opts.switchLevel === 'top' ? before.levels - 1 : opts.switchLevel;
  const sentBefore = requestsSent;
  await page.click(`#quality-buttons button[data-level="${level}"]`, { timeout: remaining() });
  result.switch = { level, at_ms: Date.now(), at_time: before.t, levels_loaded_before: [...new Set(before.frags)],
    sent_before: sentBefore };
}

async function revokeFromOutside(page) {
  const session = await page.evaluate(() => {
    const s = window.gatewayDemo.session;
    return s && { id: s.id, token: s.token };
  });
  result.revoke = { at_ms: Date.now(), session_id: session && session.id, status: null, sent_before: requestsSent };
  if (!session) return;
  const response = await fetch(`${opts.gateway}/api/sessions/${encodeURIComponent(session.id)}`, {
    method: 'DELETE', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: session.token }),
  });
  result.revoke.status = response.status;
}

async function collect(page) {
  const state = await page.evaluate(() => {
    const v = document.querySelector('video');
    const box = document.getElementById('denial');
    return {
      T: window.T, currentTime: v.currentTime, videoHeight: v.videoHeight, duration: v.duration,
      denial: box.hidden ? null : { reason: document.getElementById('denial-reason').textContent,
        detail: document.getElementById('denial-detail').textContent, source: box.dataset.source },
      // What a viewer reads: the banner as rendered (empty when hidden) and the session panel's state.
      screen: { banner: box.hidden ? '' : box.innerText, token_life: document.getElementById('s-ttl').innerText,
        paused: v.paused },
    };
  });
  result.T = state.T;
  result.screen = state.screen;
  result.currentTime = state.currentTime;
  result.videoHeight = state.videoHeight;
  result.duration = Number.isFinite(state.duration) ? state.duration : null;
  if (!result.denial) result.denial = state.denial;
  result.cookies = (await page.context().cookies()).map((c) => ({ name: c.name, path: c.path, httpOnly: c.httpOnly }));
}

async function finish(code) {
  await Promise.allSettled(pending);
  result.elapsed_ms = Date.now() - started;
  if (browser) await browser.close().catch(() => {});
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
}

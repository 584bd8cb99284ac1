#!/usr/bin/env node
/*
 * Drive the gateway's demo page in Debian's Chromium (playwright-core, no downloaded browser) and print
 * ONE JSON line with what happened. It never asserts: the caller (pytest) does. Exit status is 0 even
 * when playback failed; it is 2 only for bad arguments and 3 when the browser could not run at all.
 *
 *   node players/tests/play.mjs --gateway http://127.0.0.1:8080 --user demo-paid \
 *        --asset /vod/title-9000/master.m3u8 [--mode cookie] [--expect-denial] [--switch-level N]
 *        [--refresh-after-s S] [--idle-s S] [--renew reactive] [--screenshot out.png]
 *        [--timeout-ms 30000] [--rate 4] [--min-time 5]
 *
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
 * --expect-denial: waits for the page's denial box and returns its reason and detail.
 */
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LAUNCH_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required'];

function parseArgs(argv) {
  const opts = { timeoutMs: 30000, rate: 4, minTime: 5, expectDenial: false, switchLevel: null,
    refreshAfterS: null, idleS: null, renew: null, screenshot: null, mode: null };
  const need = (i) => { if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`); return argv[i + 1]; };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--gateway': opts.gateway = need(i).replace(/\/+$/, ''); i++; break;
      case '--user': opts.user = need(i); i++; break;
      case '--asset': opts.asset = need(i); i++; break;
      case '--mode': opts.mode = need(i); i++; break;
      case '--expect-denial': opts.expectDenial = true; break;
      case '--switch-level': opts.switchLevel = need(i) === 'top' ? 'top' : Number(need(i)); i++; break;
      case '--refresh-after-s': opts.refreshAfterS = Number(need(i)); i++; break;
      case '--screenshot': opts.screenshot = need(i); i++; break;
      case '--timeout-ms': opts.timeoutMs = Number(need(i)); i++; break;
      case '--rate': opts.rate = Number(need(i)); i++; break;
      case '--min-time': opts.minTime = Number(need(i)); i++; break;
      case '--idle-s': opts.idleS = Number(need(i)); i++; break;
      case '--renew': opts.renew = need(i); i++; break;
      case '--help': case '-h':
        process.stdout.write('usage: node play.mjs --gateway URL --user CREDENTIAL --asset PATH [--mode M] [--expect-denial]\n' +
          '  [--switch-level N|top] [--refresh-after-s S] [--idle-s S] [--renew reactive] [--screenshot PATH]\n' +
          '  [--timeout-ms N] [--rate R] [--min-time S]   (details: the comment at the top of this file)\n');
        process.exit(0);
        break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!opts.gateway || !opts.user || !opts.asset) usage('--gateway, --user and --asset are required');
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
  denial: null, T: null, bad_responses: [], failed_requests: [], requests: [], cookies: [], console_errors: [], page_errors: [],
  switch: null, refresh: null, idle: null, screenshot: null, elapsed_ms: 0,
};

const pageUrl = new URL(opts.gateway + '/');
pageUrl.searchParams.set('user', opts.user);
pageUrl.searchParams.set('asset', opts.asset);
if (opts.mode) pageUrl.searchParams.set('mode', opts.mode);
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
  browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
} catch (err) {
  result.outcome = 'browser_failed';
  result.error = String(err && err.message || err).split('\n')[0];
  await finish(3);
}

try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
  // Requests are numbered when they are *sent*; results are listed when their response arrives.
  const sequence = new WeakMap();
  page.on('request', (request) => { sequence.set(request, ++requestsSent); });
  page.on('response', (response) => {
    const request = response.request();
    const url = request.url();
    if (url.startsWith('blob:') || url.startsWith('data:')) return;
    const entry = { seq: sequence.get(request), url, method: request.method(), status: response.status(), type: request.resourceType() };
    result.requests.push(entry);
    // Raw headers as sent (includes Cookie in Chromium): only whether a cookie went out, never its value.
    pending.push(request.allHeaders().then((h) => { entry.cookie = Boolean(h.cookie); }).catch(() => {}));
    if (response.status() >= 400) {
      const bad = { seq: entry.seq, url, method: request.method(), status: response.status(),
        denial: response.headers()['x-token-denial'] || null };
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

async function collect(page) {
  const state = await page.evaluate(() => {
    const v = document.querySelector('video');
    const box = document.getElementById('denial');
    return {
      T: window.T, currentTime: v.currentTime, videoHeight: v.videoHeight, duration: v.duration,
      denial: box.hidden ? null : { reason: document.getElementById('denial-reason').textContent,
        detail: document.getElementById('denial-detail').textContent, source: box.dataset.source },
    };
  });
  result.T = state.T;
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

#!/usr/bin/env node
/*
 * Watch a live stream on any player page with one <video> and a `window.T` (players/plain.html) in Debian's
 * Chromium for --watch-s seconds of wall time, and print ONE JSON line with what happened. It never
 * asserts: the caller (pytest) does. Exit status 0 even when playback failed; 2 for bad arguments, 3 when
 * the browser could not run at all.
 *
 *   node players/tests/watch_live.mjs --url 'http://127.0.0.1:8000/players/plain.html?player=dashjs&src=…'
 *        --watch-s 40 [--timeout-ms 30000] [--session-asset /cookie/live/x/manifest.mpd --user demo-paid]
 *
 * --session-asset: the page itself starts the session (POST /api/sessions on the page's origin, as a viewer's
 * app would), so a cookie session's cookie lands in the browser; its `playback_url` becomes the page's `src`.
 *
 * Waits (up to --timeout-ms) until the video plays, then watches --watch-s seconds, sampling the media
 * time every 250 ms (`samples`: [{at_ms, ct, rs, paused}]). The browser's HTTP cache is off, so every
 * request reaches the gateway. Every HTTP response is recorded from the browser's side (page.on
 * ('response'), whatever the player makes of it): `requests` [{seq, url, status, denial, at_ms,
 * response_ms, cookie_expires_s (when a cookie set by it expires; never its value), cat_sent and
 * cat_renewed (fingerprints of a CAT request header the player sent and of a renewed CAT the response
 * carried, either header name), headers: {content-type}}]; `bad_responses`: those >= 400; `T`: the
 * page's record of the player's own events (errors included).
 */
import { createHash } from 'node:crypto';
import { launchChromium } from './chromium.mjs';

// A CAT seen in a header, as a short SHA-256 fingerprint (tokens are never printed).
const fingerprint = (value) => (value ? createHash('sha256').update(value).digest('hex').slice(0, 12) : null);
const CAT_HEADERS = ['cta-common-access-token', 'common-access-token'];
const catOf = (headers) => fingerprint(CAT_HEADERS.map((name) => headers[name]).find(Boolean));

function parseArgs(argv) {
  const opts = { url: null, watchS: 30, timeoutMs: 30000, sessionAsset: null, user: null };
  for (let i = 0; i < argv.length; i++) {
    const value = () => { if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`); return argv[++i]; };
    switch (argv[i]) {
      case '--url': opts.url = value(); break;
      case '--watch-s': opts.watchS = Number(value()); break;
      case '--timeout-ms': opts.timeoutMs = Number(value()); break;
      case '--session-asset': opts.sessionAsset = value(); break;
      case '--user': opts.user = value(); break;
      default: usage(`unknown argument ${argv[i]}`);
    }
  }
  if (!opts.url || !(opts.watchS > 0)) usage('--url and a positive --watch-s are required');
  return opts;
}

function usage(message) {
  process.stderr.write(`watch_live.mjs: ${message}\n`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const started = Date.now();
const result = { outcome: null, error: null, url: opts.url, requests: [], bad_responses: [], failed_requests: [],
  page_errors: [], samples: [], playing_at_ms: null, T: null, elapsed_ms: 0 };

let browser;
try {
  browser = await launchChromium();
} catch (err) {
  result.outcome = 'browser_failed';
  result.error = String(err && err.message || err).split('\n')[0];
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(3);
}

try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  let seq = 0;
  const sequence = new WeakMap();
  const sentAt = new WeakMap();
  const catSent = new WeakMap();
  page.on('request', (request) => {
    sequence.set(request, ++seq);
    sentAt.set(request, Date.now());
    catSent.set(request, catOf(request.headers()));
  });
  page.on('response', async (response) => {
    const request = response.request();
    const url = request.url();
    if (url.startsWith('blob:') || url.startsWith('data:')) return;
    const responseMs = Date.now();
    const headers = await response.allHeaders().catch(() => response.headers());
    // A cookie set on this response: when it expires (epoch s), never its value.
    const maxAge = /max-age=(\d+)/i.exec(headers['set-cookie'] || '');
    const entry = { seq: sequence.get(request), url, status: response.status(), denial: headers['x-token-denial'] || null,
      at_ms: sentAt.get(request), response_ms: responseMs,
      cookie_expires_s: maxAge ? Math.floor(responseMs / 1000) + Number(maxAge[1]) : null,
      cat_sent: catSent.get(request) || null, cat_renewed: catOf(headers),
      headers: { 'content-type': headers['content-type'] || null } };
    result.requests.push(entry);
    if (entry.status >= 400) result.bad_responses.push(entry);
  });
  page.on('requestfailed', (request) => {
    const url = request.url();
    if (!url.startsWith('blob:')) result.failed_requests.push({ url, failure: request.failure()?.errorText });
  });
  page.on('pageerror', (err) => result.page_errors.push(String(err).slice(0, 300)));

  let url = opts.url;
  if (opts.sessionAsset) {
    await page.goto(new URL('/players/plain.html', url).href, { waitUntil: 'domcontentloaded', timeout: opts.timeoutMs });
    const src = await page.evaluate(async ({ asset, user }) => {
      const response = await fetch('/api/sessions', { method: 'POST', credentials: 'same-origin',
        headers: { authorization: `Bearer ${user}`, 'content-type': 'application/json' }, body: JSON.stringify({ asset }) });
      if (response.status !== 201) throw new Error(`session API answered ${response.status}: ${await response.text()}`);
      return (await response.json()).playback_url;
    }, { asset: opts.sessionAsset, user: opts.user });
    url = `${url}${url.includes('?') ? '&' : '?'}src=${encodeURIComponent(src)}`;
  }
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: opts.timeoutMs });
  await page.waitForFunction(() => {
    const v = document.querySelector('video');
    return v && !v.paused && v.readyState >= 3 && v.currentTime > 0;
  }, null, { timeout: Math.max(1, started + opts.timeoutMs - Date.now()), polling: 100 });
  result.playing_at_ms = Date.now();
  const until = Date.now() + opts.watchS * 1000;
  while (Date.now() < until) {
    const s = await page.evaluate(() => {
      const v = document.querySelector('video');
      return { ct: v.currentTime, rs: v.readyState, paused: v.paused };
    });
    result.samples.push({ at_ms: Date.now(), ...s });
    await page.waitForTimeout(250);
  }
  result.outcome = 'watched';
  result.T = await page.evaluate(() => JSON.parse(JSON.stringify({ errors: window.T.errors, http: window.T.http.length })));
} catch (err) {
  result.outcome = 'timeout_or_error';
  result.error = String(err && err.message || err).split('\n')[0];
  try {
    const page = browser.contexts()[0]?.pages()[0];
    if (page) result.T = await page.evaluate(() => JSON.parse(JSON.stringify({ errors: window.T.errors, http: window.T.http.length })));
  } catch { /* the page is gone */ }
}
result.elapsed_ms = Date.now() - started;
await browser.close().catch(() => {});
process.stdout.write(JSON.stringify(result) + '\n');

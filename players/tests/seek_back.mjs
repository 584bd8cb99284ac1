#!/usr/bin/env node
/*
 * Play a VOD title to its end in Debian's Chromium, then seek back to the start and play on; print ONE
 * JSON line with what happened. It never asserts: the caller (pytest) does. Exit status is 0 even when
 * playback failed; 2 for bad arguments, 3 when the browser could not run at all.
 *
 *   node players/tests/seek_back.mjs --url 'http://127.0.0.1:8000/players/plain.html?player=shaka&src=…'
 *        [--stale-ms 4000] [--after-seek-s 3] [--timeout-ms 40000] [--screenshot out.png]
 *
 * Works with any page that has one <video> and a `window.T` (plain.html, the hls.js demo page):
 *  1. opens --url with the browser's HTTP cache disabled (CDP Network.setCacheDisabled): a segment
 *     fetched again must reach the gateway, or a cached copy would hide a refusal;
 *  2. waits until the video has ended, or its currentTime is within 1 s of its duration;
 *  3. waits until --stale-ms have passed since the last manifest (.m3u8/.mpd) response, so every token
 *     the manifests carried has aged by then (the caller picks the age that matters);
 *  4. seeks to 0 and plays until currentTime > --after-seek-s.
 *
 * Every HTTP response is recorded from the browser's side (page.on('response')), whatever the player
 * makes of it: players hide refusals behind retries, rendition switches and error codes of their own.
 * `requests`: [{seq, url, status, denial, at_ms (sent), response_ms}]; `bad_responses`: those >= 400;
 * `end` and `seek`: when those steps happened (`sent_before`: requests sent by then); `T`: the page's.
 * A refusal ends the run early (outcome `refused`, REFUSAL_GRACE_MS later, to catch the player's retries):
 * the caller fails on it anyway, and a player stalled by a 403 would otherwise wait for the timeout.
 */
import { launchChromium } from './chromium.mjs';

function parseArgs(argv) {
  const opts = { url: null, staleMs: 0, afterSeekS: 3, timeoutMs: 40000, screenshot: null };
  for (let i = 0; i < argv.length; i++) {
    const value = () => { if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`); return argv[++i]; };
    switch (argv[i]) {
      case '--url': opts.url = value(); break;
      case '--stale-ms': opts.staleMs = Number(value()); break;
      case '--after-seek-s': opts.afterSeekS = Number(value()); break;
      case '--timeout-ms': opts.timeoutMs = Number(value()); break;
      case '--screenshot': opts.screenshot = value(); break;
      case '--help': case '-h':
        process.stdout.write('usage: node seek_back.mjs --url PAGE_URL [--stale-ms MS] [--after-seek-s S] [--timeout-ms MS] [--screenshot PATH]\n');
        process.exit(0);
        break;
      default: usage(`unknown argument ${argv[i]}`);
    }
  }
  if (!opts.url) usage('--url is required');
  return opts;
}

function usage(message) {
  process.stderr.write(`seek_back.mjs: ${message}\n`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const started = Date.now();
const deadline = started + opts.timeoutMs;
const remaining = () => Math.max(1, deadline - Date.now());
const isManifest = (url) => /\.(m3u8|mpd)$/.test(new URL(url).pathname);
const REFUSAL_GRACE_MS = 2000;

let refused;  // resolves REFUSAL_GRACE_MS after the first response >= 400
const refusal = new Promise((resolve) => { refused = () => setTimeout(resolve, REFUSAL_GRACE_MS); });
// One step of the run: `promise`, unless a refusal comes first.
function step(promise) {
  promise.catch(() => {});  // the loser of the race may reject once the browser closes
  return Promise.race([promise, refusal.then(() => { throw new RefusedError(); })]);
}
class RefusedError extends Error {
  constructor() { super('the gateway refused a request (see bad_responses)'); }
}

const result = { outcome: null, error: null, phase: 'start', url: opts.url, requests: [], bad_responses: [],
  failed_requests: [], page_errors: [], end: null, seek: null, final: null, T: null, screenshot: null, elapsed_ms: 0 };

let browser;
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
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });

  const sequence = new WeakMap();
  const sentAt = new WeakMap();
  page.on('request', (request) => { sequence.set(request, ++requestsSent); sentAt.set(request, Date.now()); });
  page.on('response', (response) => {
    const request = response.request();
    const url = request.url();
    if (url.startsWith('blob:') || url.startsWith('data:')) return;
    const entry = { seq: sequence.get(request), url, status: response.status(),
      denial: response.headers()['x-token-denial'] || null, at_ms: sentAt.get(request), response_ms: Date.now() };
    result.requests.push(entry);
    if (entry.status >= 400) {
      if (!result.bad_responses.length) refused();
      result.bad_responses.push(entry);
    }
  });
  page.on('requestfailed', (request) => {
    const url = request.url();
    if (!url.startsWith('blob:')) result.failed_requests.push({ url, failure: request.failure()?.errorText });
  });
  page.on('pageerror', (err) => result.page_errors.push(String(err).slice(0, 300)));

  await page.goto(opts.url, { waitUntil: 'domcontentloaded', timeout: remaining() });

  result.phase = 'playing';
  await step(page.waitForFunction(() => document.querySelector('video').currentTime > 0.5, null, { timeout: remaining() }));

  result.phase = 'to_the_end';
  await step(page.waitForFunction(() => {
    const v = document.querySelector('video');
    return v.ended || (Number.isFinite(v.duration) && v.duration > 0 && v.currentTime >= v.duration - 1);
  }, null, { timeout: remaining(), polling: 100 }));
  result.end = { at_ms: Date.now(), sent_before: requestsSent, ...(await mediaState(page)) };

  result.phase = 'aging';
  const manifests = result.requests.filter((r) => isManifest(r.url));
  const lastManifestMs = Math.max(...manifests.map((r) => r.response_ms), started);
  const waitMs = lastManifestMs + opts.staleMs - Date.now();
  if (waitMs > 0) await step(page.waitForTimeout(Math.min(waitMs, remaining())));

  result.phase = 'seek_back';
  const before = requestsSent;
  await page.evaluate(() => {
    const v = document.querySelector('video');
    v.currentTime = 0;
    v.play().catch(() => {});
  });
  result.seek = { at_ms: Date.now(), sent_before: before, since_last_manifest_ms: Date.now() - lastManifestMs };
  await step(page.waitForFunction((s) => {
    const v = document.querySelector('video');
    return !v.seeking && !v.paused && v.currentTime > s;
  }, opts.afterSeekS, { timeout: remaining(), polling: 100 }));
  result.phase = 'done';
  result.outcome = 'played';
} catch (err) {
  result.outcome = err instanceof RefusedError ? 'refused' : 'timeout_or_error';
  result.error = String(err && err.message || err).split('\n')[0];
}
try {
  const page = browser.contexts()[0]?.pages()[0];
  if (page) {
    result.final = await mediaState(page);
    result.T = await page.evaluate(() => window.T || null);
    if (opts.screenshot) { await page.screenshot({ path: opts.screenshot }); result.screenshot = opts.screenshot; }
  }
} catch { /* the page is gone: report what we have */ }
await finish(0);

function mediaState(page) {
  return page.evaluate(() => {
    const v = document.querySelector('video');
    return { currentTime: v.currentTime, duration: Number.isFinite(v.duration) ? v.duration : null, ended: v.ended,
      paused: v.paused, videoHeight: v.videoHeight };
  });
}

async function finish(code) {
  result.elapsed_ms = Date.now() - started;
  if (browser) await browser.close().catch(() => {});
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
}

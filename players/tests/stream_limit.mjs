#!/usr/bin/env node
/*
 * Open the gateway's demo page in several tabs of one Chromium, the same viewer and title in each, one
 * after another, and print ONE JSON line of what each tab shows. It never asserts: the caller (pytest) does.
 *
 *   node players/tests/stream_limit.mjs --gateway http://127.0.0.1:8080 --user demo-paid \
 *        --asset /vod/title-9000/master.m3u8 [--tabs 3] [--min-time 1] [--timeout-ms 40000]
 *
 * Every tab but the last must play (video.currentTime > --min-time) before the next one opens; the last tab
 * is watched until it plays or its denial box shows. Then every tab is read again: `playing` is whether its
 * video still advances, `denial` the box as a viewer reads it (null when hidden).
 */
import { launchChromium } from './chromium.mjs';

const opts = { tabs: 3, minTime: 1, timeoutMs: 40000 };
for (let i = 2; i < process.argv.length; i += 2) {
  const [name, value] = [process.argv[i], process.argv[i + 1]];
  if (value === undefined) { process.stderr.write(`${name} needs a value\n`); process.exit(2); }
  if (name === '--gateway') opts.gateway = value.replace(/\/+$/, '');
  else if (name === '--user') opts.user = value;
  else if (name === '--asset') opts.asset = value;
  else if (name === '--tabs') opts.tabs = Number(value);
  else if (name === '--min-time') opts.minTime = Number(value);
  else if (name === '--timeout-ms') opts.timeoutMs = Number(value);
  else { process.stderr.write(`unknown argument ${name}\n`); process.exit(2); }
}
if (!opts.gateway || !opts.user || !opts.asset) { process.stderr.write('need --gateway, --user and --asset\n'); process.exit(2); }

const deadline = Date.now() + opts.timeoutMs;
const remaining = () => Math.max(1, deadline - Date.now());
const result = { ok: false, error: null, tabs: [] };
const pageUrl = new URL(opts.gateway + '/');
for (const [k, v] of Object.entries({ user: opts.user, asset: opts.asset, autostart: '1' })) pageUrl.searchParams.set(k, v);

const readTab = (page) => page.evaluate(() => {
  const box = document.getElementById('denial');
  return {
    currentTime: document.querySelector('video').currentTime,
    denial: box.hidden ? null : { reason: document.getElementById('denial-reason').textContent,
      detail: document.getElementById('denial-detail').textContent, status: document.getElementById('denial-status').textContent,
      source: box.dataset.source, text: box.innerText },
  };
});

let browser;
try {
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1000, height: 640 } });
  const pages = [];
  for (let i = 0; i < opts.tabs; i++) {
    const page = await context.newPage();
    pages.push(page);
    await page.goto(pageUrl.toString(), { waitUntil: 'domcontentloaded', timeout: remaining() });
    const last = i === opts.tabs - 1;
    await page.waitForFunction(([min, last]) => document.querySelector('video').currentTime > min
      || (last && document.getElementById('denial').dataset.reason), [opts.minTime, last], { timeout: remaining() });
  }
  const before = await Promise.all(pages.map(readTab));
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const after = await Promise.all(pages.map(readTab));
  result.tabs = after.map((tab, i) => ({ ...tab, playing: tab.currentTime > before[i].currentTime }));
  result.ok = true;
} catch (err) {
  result.error = String(err && err.message || err).split('\n')[0];
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.stdout.write(JSON.stringify(result) + '\n');

#!/usr/bin/env node
/*
 * What Chromium stores of a response's Set-Cookie headers: opens --page (any page of the gateway's origin),
 * fetches --url from it (same origin, credentials included, as a player's XHR would) and prints ONE JSON line:
 *   {"status": <the fetch's HTTP status>, "cookies": [{name, value, path, domain, httpOnly, secure, sameSite}]}
 * Unlike play.mjs it prints cookie values: the tests that run it sign with throwaway keys and compare the
 * stored value with the vendor's, byte for byte. Exit status 3 when the browser could not run.
 *
 *   node players/tests/cookie_jar.mjs --page http://127.0.0.1:8080/_gateway/ready --url /vod/t/v1/index.m3u8?token=…
 */
import { launchChromium } from './chromium.mjs';

function arg(name) {
  const at = process.argv.indexOf(name);
  if (at < 0 || at + 1 >= process.argv.length) {
    process.stderr.write(`usage: cookie_jar.mjs --page URL --url URL (missing ${name})\n`);
    process.exit(2);
  }
  return process.argv[at + 1];
}

const pageUrl = arg('--page');
const url = arg('--url');
let browser;
try {
  browser = await launchChromium();
} catch (error) {
  process.stderr.write(`chromium did not start: ${error}\n`);
  process.exit(3);
}
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(pageUrl);
  const status = await page.evaluate(async (target) => {
    const response = await fetch(target, { credentials: 'include' });
    await response.arrayBuffer();
    return response.status;
  }, url);
  const cookies = (await context.cookies()).map((c) => ({
    name: c.name, value: c.value, path: c.path, domain: c.domain, httpOnly: c.httpOnly, secure: c.secure,
    sameSite: c.sameSite,
  }));
  process.stdout.write(JSON.stringify({ status, cookies }) + '\n');
} finally {
  await browser.close();
}

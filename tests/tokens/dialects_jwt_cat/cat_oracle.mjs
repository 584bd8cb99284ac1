// Test oracle: @eyevinn/cat@0.16.4 (an independent CTA-5007 implementation) checks and issues tokens.
//
// Protocol: one JSON batch per stdin line, `{"cases": [...]}`; one JSON line back, `{"results": [...]}`.
// The process stays up for the whole test module. Every case carries `nowMs`, the clock Eyevinn sees
// (it reads Date.now() itself), so expiry and renewal run in simulated time.
//
//   {op: "validate", token, keyHex, kid, issuer, url, ip?, audience?, nowMs}
//       -> {ok, error, claims}                   CAT.validate(token, 'mac', ...), expectCwtTag: true
//   {op: "generate", claims, keyHex, kid, nowMs} -> {token}          CAT.generateFromJson (MAC, HS256)
//   {op: "http", token, via: header|cookie|query, url, method, issuer, keyHex, kid, nowMs}
//       -> {status, message, headers, claims}    HttpValidator.validateHttpRequest (renewal included)
import { createRequire } from 'node:module';
import { OutgoingMessage } from 'node:http';
import { createInterface } from 'node:readline';

const require = createRequire(import.meta.url);
const { CAT, HttpValidator } = require('@eyevinn/cat');

const keysOf = (c) => ({ [c.kid]: Buffer.from(c.keyHex, 'hex') });

async function validate(c) {
  const cat = new CAT({ keys: keysOf(c), expectCwtTag: true });
  try {
    const result = await cat.validate(c.token, 'mac', {
      issuer: c.issuer,
      audience: c.audience,
      url: new URL(c.url),
      ip: c.ip
    });
    return {
      ok: !result.error,
      error: result.error ? result.error.message : null,
      claims: result.cat ? result.cat.claims : null
    };
  } catch (err) {
    return { ok: false, error: String(err && err.message ? err.message : err), claims: null };
  }
}

async function generate(c) {
  const cat = new CAT({ keys: keysOf(c), expectCwtTag: true });
  const token = await cat.generateFromJson(c.claims, { type: 'mac', alg: 'HS256', kid: c.kid });
  return { token };
}

async function http(c) {
  const validator = new HttpValidator({
    keys: [{ kid: c.kid, key: Buffer.from(c.keyHex, 'hex') }],
    issuer: c.issuer
  });
  const url = new URL(c.url);
  const headers = { host: url.host };
  if (c.via === 'header') headers['cta-common-access-token'] = c.token;
  if (c.via === 'cookie') headers.cookie = `other=1; CTA-Common-Access-Token=${c.token}`;
  if (c.via === 'query') url.searchParams.set('cat', c.token);
  const request = { headers, url: url.pathname + url.search, method: c.method || 'GET' };
  const response = new OutgoingMessage();
  try {
    const result = await validator.validateHttpRequest(request, response);
    return {
      status: result.status,
      message: result.message || null,
      headers: response.getHeaders(),
      claims: result.claims || null
    };
  } catch (err) {
    return { status: 'error', message: String(err && err.message ? err.message : err), headers: {} };
  }
}

const ops = { validate, generate, http };
const realNow = Date.now;

async function run(c) {
  Date.now = () => c.nowMs;
  try {
    return await ops[c.op](c);
  } finally {
    Date.now = realNow;
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const { cases } = JSON.parse(line);
  const results = [];
  for (const c of cases) results.push(await run(c));
  process.stdout.write(JSON.stringify({ results }) + '\n');
}

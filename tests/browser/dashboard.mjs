// The dashboard in a real browser (Debian's chromium driven by playwright-core), against a
// running `paas up`: tests/dashboard_browser.rs starts it and runs this script with
//   PAAS_API, PAAS_KEY, PAAS_PROXY, PAAS_APP, SHOTS (where screenshots go), CHROMIUM (the
//   browser), PLAYWRIGHT (the folder whose node_modules has playwright-core).
// Each step waits for what it checks (generous deadlines, no timing assertions) and saves a
// screenshot; a failure exits 1 with the step's name.

import { createRequire } from 'node:module';
import path from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(k + ' is not set');
  return v;
};
const API = env('PAAS_API');
const KEY = env('PAAS_KEY');
const PROXY = env('PAAS_PROXY');
const APP = env('PAAS_APP');
const SHOTS = env('SHOTS');
const require = createRequire(path.join(env('PLAYWRIGHT'), 'package.json'));
const { chromium } = require('playwright-core');

const WAIT = 20000;
const figures = {};
const problems = [];

function check(ok, message) {
  if (!ok) throw new Error(message);
}

async function api(p, options = {}) {
  const r = await fetch(API + p, {
    ...options,
    headers: { Authorization: 'Bearer ' + KEY, 'Content-Type': 'application/json', ...(options.headers || {}) },
  });
  const body = await r.text();
  if (!r.ok) throw new Error(p + ': ' + r.status + ' ' + body);
  return body ? JSON.parse(body) : null;
}

async function request(p) {
  const r = await fetch(PROXY + p);
  await r.arrayBuffer();
  return r.status;
}

// An app line through `POST /logs` with a token of its own.
async function ingest(token, message) {
  const time = new Date().toISOString().replace('Z', '+00:00');
  const frame = `<190>1 ${time} host ${token} web.1 - ${message}`;
  const body = Buffer.byteLength(frame) + ' ' + frame;
  const r = await fetch(API + '/logs', {
    method: 'POST',
    headers: { 'Content-Type': 'application/logplex-1', Authorization: 'Basic ' + Buffer.from('token:' + token).toString('base64') },
    body,
  });
  check(r.status < 300, 'POST /logs: ' + r.status);
}

async function step(name, page, f) {
  const started = Date.now();
  try {
    await f();
  } finally {
    await page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true }).catch(() => {});
  }
  console.log(`ok - ${name} (${Date.now() - started} ms)`);
}

async function goto(page, hash) {
  await page.evaluate((h) => {
    location.hash = h;
  }, hash);
}

const browser = await chromium.launch({ executablePath: env('CHROMIUM'), args: ['--no-sandbox'] });
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push('console: ' + m.text());
  });

  await step('01-login', page, async () => {
    await page.goto(API + '/dashboard');
    await page.fill('#key', KEY);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector(`#app option[value="${APP}"]`, { state: 'attached', timeout: WAIT });
  });

  const mark = 'dash' + Date.now().toString(36);
  await step('02-tail-router-line', page, async () => {
    await goto(page, `app=${APP}&tab=tail`);
    await page.waitForFunction(() => document.getElementById('tail-status').textContent === 'Live', null, { timeout: WAIT });
    const sent = Date.now();
    check((await request('/' + mark + '-one')) < 500, 'the request failed');
    await page.waitForSelector(`#tail-lines .line:has-text("/${mark}-one")`, { timeout: WAIT });
    figures.tail_ms = Date.now() - sent;
    const row = await page.textContent(`#tail-lines .line:has-text("/${mark}-one") .router-row`);
    check(/status \d{3}/.test(row) && /method GET/.test(row), 'the router fields as a row: ' + row);
  });

  await step('03-xss-line-is-text', page, async () => {
    const { token } = await api(`/apps/${APP}/tokens`, { method: 'POST', body: JSON.stringify({ name: 'browser' }) });
    const evil = `${mark} <img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`;
    await ingest(token, evil);
    await page.waitForSelector(`#tail-lines .line:has-text("${mark} <img")`, { timeout: WAIT });
    const shown = await page.textContent(`#tail-lines .line:has-text("${mark} <img") .msg`);
    check(shown === evil, 'shown as text, verbatim: ' + shown);
    check(await page.evaluate(() => window.__xss === undefined), 'no script ran');
    check((await page.$$('#tail-lines img, #tail-lines script')).length === 0, 'no element made from the line');
  });

  await step('04-filter-narrows', page, async () => {
    // Clicking the path's value filters by it.
    await page.click(`#tail-lines .line:has-text("/${mark}-one") button.val:text-is("/${mark}-one")`);
    await page.waitForFunction(() => document.getElementById('tail-status').textContent === 'Live', null, { timeout: WAIT });
    check((await page.inputValue('#tail-filter')).includes(`path=/${mark}-one`), 'the filter took the value');
    await request('/' + mark + '-other');
    await request('/' + mark + '-one');
    await page.waitForFunction((m) => document.querySelectorAll('#tail-lines .line').length >= 2 &&
      [...document.querySelectorAll('#tail-lines .line')].filter((l) => l.textContent.includes('/' + m + '-one')).length >= 2, mark, { timeout: WAIT });
    const lines = await page.$$eval('#tail-lines .line', (ls) => ls.map((l) => l.textContent));
    check(lines.every((l) => l.includes(`/${mark}-one`)), 'only the filtered path: ' + lines.join('\n'));
    // Pause holds lines back; resume shows them.
    await page.click('#tail-pause');
    await request('/' + mark + '-one');
    await page.waitForFunction(() => /lines held/.test(document.getElementById('tail-status').textContent), null, { timeout: WAIT });
    const before = await page.$$eval('#tail-lines .line', (ls) => ls.length);
    await page.click('#tail-pause');
    const after = await page.$$eval('#tail-lines .line', (ls) => ls.length);
    check(after > before, `resume shows what was held (${before} → ${after})`);
  });

  await step('05-query-table-and-chart', page, async () => {
    const q = encodeURIComponent('source=paas process=router | count by status');
    await goto(page, `app=${APP}&tab=query&q=${q}&since=1h`);
    await page.waitForSelector('#query-table tbody tr', { timeout: WAIT });
    const chart = encodeURIComponent('source=paas process=router | timechart 1m count by status');
    await goto(page, `app=${APP}&tab=query&q=${chart}&since=1h`);
    await page.waitForSelector('#query-chart svg.chart', { timeout: WAIT });
    check((await page.$$('#query-table tbody tr')).length > 0, 'rows');
    // The URL shares the query (never the key): a new tab with it asks for a key, then shows
    // the same.
    const url = page.url();
    check(!url.includes(KEY), 'the key is not in the URL');
    const other = await context.newPage();
    await other.goto(url);
    await other.fill('#key', KEY);
    await other.click('#login-form button[type=submit]');
    await other.waitForSelector('#query-chart svg.chart', { timeout: WAIT });
    await other.close();
  });

  await step('06-red-chart-moves', page, async () => {
    await goto(page, `app=${APP}&tab=metrics`);
    const label = () => page.$eval('[data-chart="Requests/s by status class"] svg', (s) => s.getAttribute('aria-label')).catch(() => '');
    await page.waitForSelector('[data-chart="Requests/s by status class"] svg', { timeout: WAIT });
    const before = await label();
    await Promise.all(Array.from({ length: 60 }, (_, i) => request('/' + mark + '-burst' + i)));
    const deadline = Date.now() + 60000;
    let after = before;
    while (after === before) {
      check(Date.now() < deadline, 'the chart never moved: ' + before);
      await goto(page, `app=${APP}&tab=health`);
      await goto(page, `app=${APP}&tab=metrics`);
      await page.waitForSelector('[data-chart="Requests/s by status class"] svg', { timeout: WAIT });
      await page.waitForTimeout(500);
      after = await label();
    }
    figures.red_before = before;
    figures.red_after = after;
    // The dynos' runtime metrics (one a second) make the memory and load charts.
    for (const chart of ['Dyno memory', 'Dyno load (1m)']) {
      const deadline = Date.now() + 60000;
      while (!(await page.$(`[data-chart="${chart}"] svg`))) {
        check(Date.now() < deadline, chart + ' never drawn');
        await goto(page, `app=${APP}&tab=health`);
        await goto(page, `app=${APP}&tab=metrics`);
        await page.waitForSelector(`[data-chart="${chart}"]`, { timeout: WAIT });
      }
    }
    figures.memory = await page.$eval('[data-chart="Dyno memory"] svg', (s) => s.getAttribute('aria-label'));
  });

  await step('07-health', page, async () => {
    await goto(page, `app=${APP}&tab=health`);
    await page.waitForSelector('[data-panel="Dynos"] table', { timeout: WAIT });
    await page.waitForSelector('[data-panel="Router"] table', { timeout: WAIT });
    const heads = await page.$$eval('[data-panel="Router"] th', (ths) => ths.map((t) => t.textContent));
    check(heads.includes('lines/s') && heads.includes('index lag (bytes)'), 'router panel: ' + heads);
    const dyno = await page.textContent('[data-panel="Dynos"] tbody');
    check(/web\.1\s*up/.test(dyno), 'the web dyno is up: ' + dyno);
  });

  await step('08-phone', page, async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await goto(page, `app=${APP}&tab=tail`);
    await page.waitForSelector('#tail-lines .line', { timeout: WAIT });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, 'no sideways scrolling on a phone: ' + overflow + ' px');
    // Keyboard: Tab reaches the tail's inputs and buttons.
    await page.focus('#tail-source');
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement.id === 'tail-dyno'), 'Tab moves to the dyno field');
  });

  await step('09-status-degraded', page, async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    await api(`/apps/${APP}/formation`, { method: 'PATCH', body: JSON.stringify({ updates: [{ type: 'web', quantity: 0 }] }) });
    const deadline = Date.now() + 30000;
    for (;;) {
      await page.goto(API + '/status');
      const state = await page.getAttribute('td[data-component="dynos"]', 'class');
      if (state === 'degraded') break;
      check(Date.now() < deadline, 'dynos never degraded: ' + state);
      await page.waitForTimeout(200);
    }
    const text = await page.textContent('body');
    check(!text.includes(APP), 'the status page names no app');
    check(text.includes('Some systems are degraded'), text);
  });

  check(problems.length === 0, 'the page reported problems:\n' + problems.join('\n'));
  console.log('figures ' + JSON.stringify(figures));
} catch (e) {
  failed = true;
  console.log('not ok - ' + e.message);
  if (problems.length) console.log(problems.join('\n'));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);

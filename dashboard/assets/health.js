// Health panels of the app: the router (ingest, drops by reason, tails, the index's lag),
// drains (delivered, dropped, buffered, last error), dynos (state, restarts, R-codes), and the
// cache and database adapter when attached. Each panel reads its API; a part that is not
// running (no dynos under `paas logplex`) says so.

import { $, el, fill, table } from './dom.js';
import { json, query } from './api.js';

function panel(title, ...body) {
  return el('section', { class: 'card', 'data-panel': title }, el('h3', {}, title), ...body);
}

function sum(o) {
  return Object.values(o || {}).reduce((a, b) => a + b, 0);
}

function note(text) {
  return el('p', { class: 'muted' }, text);
}

// The last reading of each app's accepted count, for the ingest rate between two refreshes.
const lastAccepted = new Map();

function ingestRate(base, accepted) {
  const now = Date.now();
  const last = lastAccepted.get(base);
  lastAccepted.set(base, { accepted, at: now });
  if (!last || now <= last.at) return null;
  return Math.max(0, accepted - last.accepted) / ((now - last.at) / 1000);
}

async function router(base) {
  const s = await json(base + '/stats');
  const rate = ingestRate(base, s.accepted);
  let lag = null;
  try {
    lag = (await json(base + '/index')).lag_bytes;
  } catch {
    lag = null;
  }
  const drops = Object.entries(s.dropped || {}).filter(([, n]) => n > 0);
  return panel('Router',
    table(['accepted', 'lines/s', 'refused', 'dropped', 'buffered', 'tails', 'index lag (bytes)'],
      [[s.accepted, rate === null ? '…' : rate, sum(s.rejected), sum(s.dropped), s.buffered, s.tails, lag]], 'Router'),
    drops.length ? table(['dropped by reason', 'lines'], drops, 'Drops by reason') : note('Nothing dropped.'));
}

async function drains(base) {
  const list = await json(base + '/log-drains');
  if (!list.length) return panel('Drains', note('No drains.'));
  return panel('Drains', table(['drain', 'state', 'delivered', 'sent', 'dropped', 'buffered', 'last error'],
    list.map((d) => {
      const h = d.health || d;
      const state = h.degraded ? 'degraded' : 'up';
      return [d.url || d.token || d.id, el('span', { class: state }, state), h.delivered, h.sent, h.dropped, h.buffered, h.last_error || ''];
    }), 'Drains'));
}

async function dynos(app, base) {
  let list;
  try {
    list = await json(base + '/dynos');
  } catch (e) {
    if (e.status === 404) return panel('Dynos', note('No dynos here (the router runs without the stack).'));
    throw e;
  }
  let rcodes = [];
  try {
    rcodes = await query(app, 'source=paas ("R10" or "R12" or "R14" or "R15") | count by process', '1h');
  } catch {
    rcodes = [];
  }
  return panel('Dynos',
    list.length ? table(['dyno', 'state', 'restarts', 'for (s)'],
      list.map((d) => [d.name, el('span', { class: d.state === 'up' ? 'up' : 'degraded' }, d.state), d.restarts, d.state_seconds]), 'Dynos')
      : note('No dynos running (scaled to 0).'),
    rcodes.length ? table(['R-code lines, last hour', 'count'], rcodes.map((r) => [r.process, r.count]), 'R-codes') : note('No R-codes in the last hour.'));
}

function flat(o, prefix = '') {
  return Object.entries(o || {}).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? flat(v, prefix + k + '.') : [[prefix + k, v]]);
}

async function optional(title, path) {
  try {
    const rows = flat(await json(path));
    return panel(title, rows.length ? table(['', ''], rows, title) : note('Not attached.'));
  } catch (e) {
    if (e.status === 404) return panel(title, note('Not attached.'));
    throw e;
  }
}

export async function drawHealth(app) {
  const base = '/apps/' + encodeURIComponent(app);
  $('health-status').textContent = 'updating…';
  const made = await Promise.allSettled([
    router(base), drains(base), dynos(app, base), optional('Cache', base + '/cache'), optional('Database', base + '/addons'),
  ]);
  fill($('health-panels'), made.map((m) => m.status === 'fulfilled' ? m.value
    : panel('Unavailable', el('p', { class: 'error' }, m.reason.message))));
  $('health-status').textContent = 'updated ' + new Date().toLocaleTimeString();
}

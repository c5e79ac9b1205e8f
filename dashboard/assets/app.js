// The dashboard's entry: the key, the app, the view, all in the URL's hash (`#tab=query&
// app=shop&q=…&since=1h`) so that a link shares what is shown (never the key).

import { $, el, fill } from './dom.js';
import { key, setKey, json, onRefused } from './api.js';
import { startTail, stopTail, setPaused, isPaused, clearTail, addFilter } from './tail.js';
import { runQuery } from './query.js';
import { drawMetrics } from './metrics.js';
import { drawHealth } from './health.js';

const TABS = ['tail', 'query', 'metrics', 'health'];
let timer = null;

function state() {
  const p = new URLSearchParams(location.hash.slice(1));
  return Object.fromEntries(p.entries());
}

function setState(changes, replace = false) {
  const p = new URLSearchParams(location.hash.slice(1));
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === null || v === '') p.delete(k);
    else p.set(k, v);
  }
  const hash = '#' + p.toString();
  if (replace) history.replaceState(null, '', hash);
  else if (location.hash !== hash) location.hash = hash;
}

function showLogin(message) {
  stopTail();
  $('login').hidden = false;
  for (const id of ['app-pick', 'tabs', 'signout']) $(id).hidden = true;
  for (const t of TABS) $('view-' + t).hidden = true;
  $('login-error').textContent = message || '';
  $('key').focus();
}

async function loadApps() {
  const apps = await json('/apps');
  const select = $('app');
  fill(select, apps.map((a) => el('option', { value: a.name }, a.name)));
  return apps.map((a) => a.name);
}

function tailFilters() {
  return { source: $('tail-source').value.trim(), dyno: $('tail-dyno').value.trim(), filter: $('tail-filter').value.trim() };
}

// A clicked value becomes a filter; the hash changing starts the tail again (one log session).
function pick(k, v) {
  $('tail-filter').value = addFilter($('tail-filter').value, k, v);
  const before = location.hash;
  setState({ filter: $('tail-filter').value });
  if (location.hash === before) restartTail();
}

function restartTail() {
  const s = state();
  if (s.app) startTail(s.app, tailFilters(), pick);
}

function every(f) {
  if (timer) clearInterval(timer);
  timer = setInterval(() => {
    if (!document.hidden) f();
  }, 10000);
}

// Shows the view the hash names.
function render() {
  const s = state();
  const tab = TABS.includes(s.tab) ? s.tab : 'tail';
  if (!s.app) return;
  $('app').value = s.app;
  for (const t of TABS) $('view-' + t).hidden = t !== tab;
  for (const a of document.querySelectorAll('#tabs a[data-tab]')) {
    if (a.dataset.tab === tab) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
    a.href = '#' + new URLSearchParams({ ...s, tab: a.dataset.tab }).toString();
  }
  if (timer) clearInterval(timer);
  timer = null;
  if (tab !== 'tail') stopTail();
  if (tab === 'tail') {
    $('tail-source').value = s.source || '';
    $('tail-dyno').value = s.dyno || '';
    $('tail-filter').value = s.filter || '';
    restartTail();
  } else if (tab === 'query') {
    $('query-text').value = s.q || '';
    $('query-since').value = s.since || '1h';
    runQuery(s.app, s.q || '', s.since || '1h');
  } else if (tab === 'metrics') {
    drawMetrics(s.app);
    every(() => drawMetrics(state().app));
  } else if (tab === 'health') {
    drawHealth(s.app);
    every(() => drawHealth(state().app));
  }
}

async function open() {
  let apps;
  try {
    apps = await loadApps();
  } catch (e) {
    showLogin(e.status === 401 ? 'That key was not accepted.' : 'The API did not answer: ' + e.message);
    return;
  }
  $('login').hidden = true;
  for (const id of ['app-pick', 'tabs', 'signout']) $(id).hidden = false;
  if (apps.length === 0) {
    $('login-error').textContent = 'No apps yet.';
    return;
  }
  const s = state();
  if (!s.app || !apps.includes(s.app)) setState({ app: apps[0], tab: s.tab || 'tail' }, true);
  render();
}

function wire() {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    setKey($('key').value.trim());
    $('key').value = '';
    open();
  });
  $('signout').addEventListener('click', () => {
    setKey(null);
    showLogin();
  });
  onRefused(() => {
    setKey(null);
    showLogin('The key was refused.');
  });
  $('app').addEventListener('change', () => setState({ app: $('app').value }));
  $('tail-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = tailFilters();
    const before = location.hash;
    setState({ source: f.source, dyno: f.dyno, filter: f.filter });
    if (location.hash === before) restartTail();
  });
  $('tail-pause').addEventListener('click', () => setPaused(!isPaused(), pick));
  $('tail-clear').addEventListener('click', clearTail);
  $('query-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const before = location.hash;
    setState({ q: $('query-text').value, since: $('query-since').value });
    if (location.hash === before) render();
  });
  window.addEventListener('hashchange', render);
  document.addEventListener('keydown', (e) => {
    // `/` focuses the view's main input, as in many consoles.
    if (e.key === '/' && !['INPUT', 'SELECT', 'TEXTAREA'].includes(document.activeElement.tagName)) {
      const input = state().tab === 'query' ? $('query-text') : $('tail-filter');
      if (!input.closest('[hidden]')) {
        e.preventDefault();
        input.focus();
      }
    }
  });
}

wire();
if (key()) open();
else showLogin();

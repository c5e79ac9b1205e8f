// The live tail: a log session of the app (source, dyno and filter as the CLI's `paas logs`),
// its stream read as NDJSON with fetch (the session URL carries its own secret; an
// EventSource could not ask for NDJSON's fields), shown coloured like the CLI. Pause keeps
// reading and holds lines back; a field's value, clicked, becomes a filter.

import { $, el, fill, processClass, logfmt, filterValue } from './dom.js';
import { json, stream } from './api.js';

const SHOWN = 2000; // lines on screen at most
const HELD = 10000; // lines held while paused at most

let current = null; // { abort, app }
let paused = false;
let held = [];
let heldDropped = 0;

const ROUTER_FIELDS = ['method', 'path', 'status', 'service', 'connect', 'dyno', 'code', 'bytes'];

function statusClass(v) {
  const c = String(v)[0];
  return ['2', '3', '4', '5'].includes(c) ? 's' + c : null;
}

function time(t) {
  // `2026-12-05T07:30:00.123456+00:00` → `07:30:00.123`
  const m = /T(\d\d:\d\d:\d\d(?:\.\d{1,3})?)/.exec(t || '');
  return m ? m[1] : String(t || '');
}

// One line as the CLI shows it, fields clickable.
export function renderLine(row, onPick) {
  const pairs = logfmt(row.message || '');
  const message = el('span', { class: 'msg' });
  const error = /(^|\s)at=error(\s|$)/.test(row.message || '') || (row.message || '').startsWith('Error ');
  if (error) message.classList.add('err');
  for (const { key: k, value: v, raw } of pairs) {
    if (k === null) {
      message.append(raw);
      continue;
    }
    const value = el('button', { type: 'button', class: 'val', title: 'Filter by ' + k + '=' + v }, raw);
    if (k === 'status' && statusClass(v)) value.classList.add(statusClass(v));
    value.addEventListener('click', () => onPick(k, v));
    message.append(el('span', { class: 'key' }, k + '='), value);
  }
  const header = el('span', { class: processClass(row.source || '', row.process || '') },
    (row.source || '') + '[' + (row.process || '') + ']:');
  const line = el('div', { class: 'line', 'data-process': row.process || '' },
    el('span', { class: 'time' }, time(row.time)), ' ', header, ' ', message);
  if (row.process === 'router') {
    const fields = Object.fromEntries(pairs.filter((p) => p.key !== null).map((p) => [p.key, p.value]));
    const cells = ROUTER_FIELDS.filter((f) => fields[f] !== undefined).map((f) => {
      const b = el('b', f === 'status' && statusClass(fields[f]) ? { class: statusClass(fields[f]) } : {}, fields[f]);
      return el('span', {}, f + ' ', b);
    });
    line.append(el('div', { class: 'router-row', role: 'group', 'aria-label': 'router fields' }, cells));
  }
  return line;
}

function show(rows, onPick) {
  const box = $('tail-lines');
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 40;
  for (const row of rows) box.append(renderLine(row, onPick));
  while (box.childElementCount > SHOWN) box.firstElementChild.remove();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function status(text) {
  $('tail-status').textContent = text;
}

export function stopTail() {
  if (current) current.abort.abort();
  current = null;
}

// Starts tailing `app` with the form's filters; `onPick(key, value)` adds a filter.
export async function startTail(app, filters, onPick) {
  stopTail();
  const abort = new AbortController();
  current = { abort, app };
  // A new session replays the recent lines that pass its filters: start from nothing.
  fill($('tail-lines'));
  held = [];
  heldDropped = 0;
  const body = { tail: true, lines: 100 };
  for (const k of ['source', 'dyno', 'filter']) {
    if (filters[k]) body[k] = filters[k];
  }
  status('Connecting…');
  let session;
  try {
    session = await json('/apps/' + encodeURIComponent(app) + '/log-sessions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  } catch (e) {
    status('The tail did not start: ' + e.message);
    return;
  }
  // The session's own URL, on this page's origin (the one the CSP allows).
  const path = new URL(session.logplex_url, location.href).pathname;
  status(paused ? 'Paused' : 'Live');
  try {
    await stream(path, (row) => {
      if (paused) {
        held.push(row);
        if (held.length > HELD) {
          held.shift();
          heldDropped++;
        }
        status('Paused: ' + held.length + ' lines held' + (heldDropped ? ', ' + heldDropped + ' dropped' : ''));
      } else {
        show([row], onPick);
      }
    }, abort.signal);
    if (current && current.abort === abort) status('The stream ended; press Tail to start again.');
  } catch (e) {
    if (!abort.signal.aborted) status('The stream broke: ' + e.message);
  }
}

export function setPaused(p, onPick) {
  paused = p;
  const button = $('tail-pause');
  button.setAttribute('aria-pressed', String(p));
  button.textContent = p ? 'Resume' : 'Pause';
  if (!p) {
    show(held, onPick);
    held = [];
    status(current ? 'Live' : '');
  } else {
    status('Paused');
  }
}

export function isPaused() {
  return paused;
}

export function clearTail() {
  fill($('tail-lines'));
}

// `key=value` added to a filter's text.
export function addFilter(filter, key, value) {
  const term = key + '=' + filterValue(value);
  return filter.trim() ? filter.trim() + ' ' + term : term;
}

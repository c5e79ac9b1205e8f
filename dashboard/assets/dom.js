// Building the page from data as text only: every string goes in as a text node (never as
// markup), so a log line holding `<script>` shows as those characters.

// An element with attributes (`class`, `data-*`, `aria-*`, …) and children (nodes, or strings
// inserted as text).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    e.setAttribute(k, v === true ? '' : String(v));
  }
  e.append(...children.flat().filter((c) => c !== undefined && c !== null));
  return e;
}

// The element with this id.
export function $(id) {
  return document.getElementById(id);
}

// Replaces the element's children.
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null));
}

// A table of `columns` over `rows` (arrays of cells; numbers right-aligned).
export function table(columns, rows, caption) {
  return el('table', {},
    caption ? el('caption', { class: 'visually-hidden' }, caption) : null,
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col' }, String(c))))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((cell) =>
      el('td', typeof cell === 'number' ? { class: 'num' } : {}, cell instanceof Node ? cell : text(cell)))))));
}

// A cell's text: numbers rounded for reading, nothing for null.
export function text(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(2);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// The colour class of a process, as the CLI picks it: platform lines one colour, else by the
// process type's hash over six colours.
export function processClass(source, process) {
  if (source === 'paas') return 'cp';
  const kind = process.split('.')[0];
  let h = 5381;
  for (const b of new TextEncoder().encode(kind)) h = (Math.imul(h, 33) ^ b) >>> 0;
  return 'c' + (h % 6);
}

// A message cut into its logfmt pairs, keeping every character: [{key, value, raw}…] where
// `raw` is the text as written (quotes and escapes included), `value` the value read from it;
// words that are no pair and the spaces between come as {key: null, raw}.
export function logfmt(message) {
  const out = [];
  let i = 0;
  const n = message.length;
  while (i < n) {
    let j = i;
    if (message[i] === ' ') {
      while (j < n && message[j] === ' ') j++;
      out.push({ key: null, raw: message.slice(i, j) });
      i = j;
      continue;
    }
    while (j < n && message[j] !== ' ' && message[j] !== '=' && message[j] !== '"') j++;
    const key = message.slice(i, j);
    if (j < n && message[j] === '=' && key) {
      const start = j + 1;
      j = start;
      let value = '';
      if (message[j] === '"') {
        j++;
        while (j < n && message[j] !== '"') {
          if (message[j] === '\\' && j + 1 < n) j++;
          value += message[j];
          j++;
        }
        if (j < n) j++;
        // A quoted value runs to its closing quote; what follows it up to a space is text.
      } else {
        while (j < n && message[j] !== ' ') j++;
        value = message.slice(start, j);
      }
      out.push({ key, value, raw: message.slice(start, j) });
      i = j;
    } else {
      while (j < n && message[j] !== ' ') j++;
      out.push({ key: null, raw: message.slice(i, j) });
      i = j;
    }
  }
  return out;
}

// A logfmt value as a filter would take it: quoted when it holds a space, a quote or nothing.
export function filterValue(v) {
  return /^[^\s"()=!<>~]+$/.test(v) ? v : '"' + v.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

// The query box: issue 7's language against the app's kept lines; lines and tables as a
// table, a `timechart` also as a chart. The query and window live in the URL, so a link
// shares them.

import { $, el, fill, table } from './dom.js';
import { query } from './api.js';
import { lineChart, seriesOf } from './chart.js';

export async function runQuery(app, q, since) {
  const status = $('query-status');
  fill($('query-chart'));
  fill($('query-table'));
  if (!q.trim()) {
    status.textContent = 'Type a query, e.g. status>=500 | count by path';
    return;
  }
  status.textContent = 'Running…';
  let rows;
  try {
    rows = await query(app, q, since);
  } catch (e) {
    status.textContent = '';
    fill($('query-table'), el('pre', { class: 'error', role: 'alert' }, e.message));
    return;
  }
  status.textContent = rows.length + (rows.length === 1 ? ' row' : ' rows');
  if (rows.length === 0) return;
  if ('message' in rows[0] && 'process' in rows[0]) {
    fill($('query-table'), table(['time', 'source[process]', 'message'],
      rows.map((r) => [r.time, r.source + '[' + r.process + ']', r.message]), 'Matching lines'));
    return;
  }
  const columns = Object.keys(rows[0]);
  fill($('query-table'), table(columns, rows.map((r) => columns.map((c) => r[c])), 'Query result'));
  if (/\|\s*timechart\b/.test(q) && columns.includes('time')) {
    const values = columns.filter((c) => c !== 'time' && typeof rows[0][c] === 'number');
    const keys = columns.filter((c) => c !== 'time' && !values.includes(c));
    const charts = values.map((v) => lineChart(v, seriesOf(rows, v, keys)));
    fill($('query-chart'), el('div', { class: 'charts' }, charts));
  }
}

// RED charts of the app over the last hour, from its router lines and dynos' runtime metrics
// as the query engine keeps them (the same lines metric extraction counts): requests a second
// by status class, H-codes, service time p50/p95/p99, dyno memory and load. Redrawn every
// 10 s while shown.

import { $, fill } from './dom.js';
import { query } from './api.js';
import { lineChart, seriesOf } from './chart.js';

const ROUTER = 'source=paas process=router';

async function requests(app) {
  const rows = await query(app, ROUTER + ' status | timechart 1m count by status', '1h', 100000);
  const by = new Map();
  for (const r of rows) {
    const cls = String(r.status)[0] + 'xx';
    const k = cls + '|' + r.time;
    by.set(k, (by.get(k) || 0) + r.count / 60);
  }
  const classes = new Map();
  for (const [k, v] of by) {
    const [cls, time] = k.split('|');
    if (!classes.has(cls)) classes.set(cls, []);
    classes.get(cls).push([Date.parse(time), v]);
  }
  const series = [...classes.entries()].sort().map(([name, points]) => ({ name, points }));
  return lineChart('Requests/s by status class', series, '/s');
}

async function codes(app) {
  const rows = await query(app, ROUTER + ' code | timechart 1m count by code', '1h', 100000);
  return lineChart('H-codes a minute', seriesOf(rows, 'count', ['code']));
}

async function service(app) {
  const rows = await query(app, ROUTER + ' service | timechart 1m p50(service),p95(service),p99(service)', '1h', 100000);
  const series = ['p50', 'p95', 'p99'].flatMap((p) =>
    seriesOf(rows, p + '(service)', []).map((s) => ({ ...s, name: p })));
  return lineChart('Service time', series, 'ms');
}

async function memory(app) {
  const rows = await query(app, 'source=paas sample#memory_total | timechart 1m avg(sample#memory_total) by process', '1h', 100000);
  return lineChart('Dyno memory', seriesOf(rows, 'avg(sample#memory_total)', ['process'], 1 / 1e6), 'MB');
}

async function load(app) {
  const rows = await query(app, 'source=paas sample#load_avg_1m | timechart 1m avg(sample#load_avg_1m) by process', '1h', 100000);
  return lineChart('Dyno load (1m)', seriesOf(rows, 'avg(sample#load_avg_1m)', ['process']));
}

export async function drawMetrics(app) {
  const status = $('metrics-status');
  status.textContent = 'updating…';
  const made = await Promise.allSettled([requests(app), codes(app), service(app), memory(app), load(app)]);
  const charts = made.filter((m) => m.status === 'fulfilled').map((m) => m.value);
  const failed = made.filter((m) => m.status === 'rejected').map((m) => m.reason.message);
  fill($('metrics-charts'), charts);
  status.textContent = failed.length ? 'some charts failed: ' + failed.join('; ') : 'updated ' + new Date().toLocaleTimeString();
}

// Line charts drawn by hand in SVG: series of [time ms, value] points on a shared time axis,
// with a legend and a text summary for screen readers.

import { el } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
const COLOURS = ['#5fd7e8', '#f5d76e', '#7ee081', '#f08cf0', '#8fb8ff', '#ff9e8a', '#c8c8c8', '#ffb86c'];
const W = 640;
const H = 220;
const PAD = { left: 56, right: 12, top: 10, bottom: 26 };

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  e.append(...children);
  return e;
}

function short(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (a >= 1e3) return (v / 1e3).toFixed(1) + 'k';
  if (a >= 10 || v === 0) return String(Math.round(v));
  return v.toFixed(2);
}

function clock(ms) {
  const d = new Date(ms);
  return String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
}

// A chart of `series` ([{name, points: [[ms, value]…]}]) titled `title`, values in `unit`.
export function lineChart(title, series, unit = '') {
  const all = series.flatMap((s) => s.points);
  const card = el('figure', { class: 'card chart-card', 'data-chart': title });
  card.append(el('h3', {}, title));
  if (all.length === 0) {
    card.append(el('p', { class: 'muted' }, 'No data in this window.'));
    return card;
  }
  let t0 = Math.min(...all.map((p) => p[0]));
  let t1 = Math.max(...all.map((p) => p[0]));
  if (t1 === t0) {
    t0 -= 60000;
    t1 += 60000;
  }
  const vmax = Math.max(...all.map((p) => p[1]), 0) || 1;
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / vmax) * (H - PAD.top - PAD.bottom);
  const summary = series.map((s) => {
    const last = s.points[s.points.length - 1];
    return s.name + ': last ' + short(last ? last[1] : 0) + unit;
  }).join('; ');
  const chart = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title + '. ' + summary });
  chart.append(svg('title', {}, title));
  for (const f of [0, 0.5, 1]) {
    const v = vmax * f;
    chart.append(svg('line', { class: 'axis', x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
    chart.append(svg('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, short(v) + unit));
  }
  for (const f of [0, 0.5, 1]) {
    const t = t0 + (t1 - t0) * f;
    chart.append(svg('text', { x: x(t), y: H - 6, 'text-anchor': f === 0 ? 'start' : f === 1 ? 'end' : 'middle' }, clock(t)));
  }
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = s.points.slice().sort((a, b) => a[0] - b[0]);
    if (points.length === 1) {
      chart.append(svg('circle', { cx: x(points[0][0]), cy: y(points[0][1]), r: 3, fill: colour }));
    } else {
      chart.append(svg('polyline', {
        stroke: colour,
        points: points.map((p) => x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1)).join(' '),
        'data-series': s.name,
      }));
    }
  });
  card.append(chart);
  const legend = el('ul', { class: 'legend' });
  series.forEach((s, i) => {
    const swatch = el('i', { 'aria-hidden': 'true' });
    swatch.style.background = COLOURS[i % COLOURS.length];
    legend.append(el('li', {}, swatch, s.name));
  });
  card.append(legend);
  return card;
}

// Series from timechart rows: grouped by the rows' key columns, valued by `valueColumn`.
export function seriesOf(rows, valueColumn, keyColumns, scale = 1) {
  const by = new Map();
  for (const r of rows) {
    const name = keyColumns.map((k) => r[k]).join(' ') || valueColumn;
    const t = Date.parse(r.time);
    const v = r[valueColumn];
    if (Number.isNaN(t) || typeof v !== 'number') continue;
    if (!by.has(name)) by.set(name, []);
    by.get(name).push([t, v * scale]);
  }
  return [...by.entries()].map(([name, points]) => ({ name, points }));
}

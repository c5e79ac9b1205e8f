// Calls to the router's API with the key the user typed, kept in this tab's sessionStorage and
// sent as a header (no cookie: nothing another site can make the browser send).

const KEY = 'paas-key';

export function key() {
  return sessionStorage.getItem(KEY);
}

export function setKey(k) {
  if (k) sessionStorage.setItem(KEY, k);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Listeners told when the key is refused (the page shows the login again).
const refused = [];
export function onRefused(f) {
  refused.push(f);
}

// fetch with the key; a non-2xx answer throws an ApiError with the API's message.
export async function call(path, options = {}) {
  const headers = new Headers(options.headers || {});
  headers.set('Authorization', 'Bearer ' + (key() || ''));
  const r = await fetch(path, { ...options, headers });
  if (r.status === 401) refused.forEach((f) => f());
  if (!r.ok) {
    let message = r.status + ' ' + r.statusText;
    try {
      const body = await r.text();
      try {
        message = JSON.parse(body).message || body;
      } catch {
        message = body || message;
      }
    } catch {
      // keep the status line
    }
    throw new ApiError(r.status, message);
  }
  return r;
}

export async function json(path, options) {
  return (await call(path, options)).json();
}

// The rows of an NDJSON answer.
export async function ndjson(path, options) {
  const body = await (await call(path, options)).text();
  return body.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

// A query of the app's kept lines (issue 7's language), as rows.
export function query(app, q, since, limit = 1000) {
  const p = new URLSearchParams({ q, since, limit: String(limit) });
  return ndjson('/apps/' + encodeURIComponent(app) + '/query?' + p);
}

// Reads a streaming NDJSON response, calling `onRow` for each object, until it ends or
// `signal` aborts.
export async function stream(path, onRow, signal) {
  const r = await fetch(path, { headers: { Accept: 'application/x-ndjson' }, signal });
  if (!r.ok || !r.body) throw new ApiError(r.status, 'the stream did not open: ' + r.status);
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let rest = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += decoder.decode(value, { stream: true });
    const lines = rest.split('\n');
    rest = lines.pop();
    for (const l of lines) {
      if (l.trim()) onRow(JSON.parse(l));
    }
  }
}

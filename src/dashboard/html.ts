/**
 * Server-rendered HTML of the dashboard. Every value that comes from the database (channel names,
 * payloads, errors, application names) goes through {@link esc}; the page's script builds its updates
 * with `textContent`, never `innerHTML`. The style and the script carry the response's CSP nonce.
 */
import type { DashboardStatus, FailedDetail } from './api.ts';
import { CSRF_FIELD } from './security.ts';

/** Escapes text for HTML content and double- or single-quoted attribute values. */
export function esc(value: unknown): string {
  return String(value ?? '')
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** What every page needs to render links, forms and the nonce'd style and script. */
export interface PageContext {
  base: string;
  nonce: string;
  csrf: string;
  writes: boolean;
  /** A token is configured: show the log-out button. */
  auth: boolean;
  pollMs: number;
  title: string;
}

/** Messages a redirect after a write may ask for (`?msg=`): fixed texts, never user data. */
export const FLASH: Record<string, (n: number) => string> = {
  retried: (n) => `Re-queued ${n} failed notification${n === 1 ? '' : 's'}.`,
  purged: (n) => `Deleted ${n} failed notification${n === 1 ? '' : 's'}.`,
  gone: () => 'That notification is no longer failed (already retried, purged or handled).',
};

/** `850ms`, `12s`, `3m 20s`, `2h 5m`, `3d 4h`. */
export function formatAge(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

const STYLE = `
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1d2330;--muted:#667085;--card:#fff;--line:#e3e6eb;--accent:#2f6fde;--bad:#c4320a;--ok:#067647;--warn:#b54708}
@media (prefers-color-scheme:dark){:root{--bg:#111418;--fg:#e6e8eb;--muted:#98a2b3;--card:#1a1e24;--line:#2b313a;--accent:#6ea0ff;--bad:#ff7a59;--ok:#47cd89;--warn:#fdb022}}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;align-items:center;gap:12px;padding:12px 20px;border-bottom:1px solid var(--line);background:var(--card)}
header h1{font-size:16px;margin:0;font-weight:600}header .grow{flex:1}
main{padding:16px 20px;max-width:1200px;margin:0 auto}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.badge{font-size:12px;padding:2px 8px;border-radius:10px;border:1px solid var(--line);color:var(--muted)}
.badge.rw{color:var(--warn);border-color:var(--warn)}
.muted{color:var(--muted)}.bad{color:var(--bad)}.ok{color:var(--ok)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:12px;margin-bottom:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card .label{font-size:12px;color:var(--muted)}.card .value{font-size:24px;font-weight:600;font-variant-numeric:tabular-nums}
svg.spark{display:block;width:100%;height:28px}svg.spark polyline{fill:none;stroke:var(--accent);stroke-width:1.5}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;margin-bottom:16px}
section h2{font-size:14px;margin:0;padding:10px 12px;border-bottom:1px solid var(--line);display:flex;gap:8px;align-items:center}
section h2 .grow{flex:1}section .note{padding:6px 12px;font-size:12px;color:var(--muted)}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:6px 12px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:500}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr:last-child td{border-bottom:0}td.err{max-width:480px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font-family:ui-monospace,monospace;font-size:12px}
td svg.spark{width:120px;height:20px}
form{display:inline}button{font:inherit;font-size:12px;padding:3px 10px;border-radius:6px;border:1px solid var(--line);background:var(--bg);color:var(--fg);cursor:pointer}
button.danger{color:var(--bad);border-color:var(--bad)}button:hover{border-color:var(--accent)}
.flash{padding:8px 12px;border:1px solid var(--ok);color:var(--ok);border-radius:8px;margin-bottom:16px;background:var(--card)}
.error{border-color:var(--bad);color:var(--bad)}
pre{margin:0;padding:10px 12px;overflow:auto;max-height:420px;font:12px/1.5 ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0;padding:10px 12px}dt{color:var(--muted)}dd{margin:0}
.empty{padding:10px 12px;color:var(--muted)}
.login{max-width:360px;margin:60px auto;padding:20px}.login input{width:100%;font:inherit;padding:6px 8px;margin:8px 0;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg)}
`;

function csrfInput(ctx: PageContext): string {
  return `<input type="hidden" name="${CSRF_FIELD}" value="${esc(ctx.csrf)}">`;
}

/** A POST form with one button and hidden fields (and the CSRF token). */
export function actionForm(
  ctx: PageContext,
  action: string,
  label: string,
  fields: Record<string, string> = {},
  danger = false,
): string {
  const hidden = Object.entries(fields)
    .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
    .join('');
  return `<form method="post" action="${esc(ctx.base + action)}">${csrfInput(ctx)}${hidden}<button type="submit"${danger ? ' class="danger" data-confirm="1"' : ''}>${esc(label)}</button></form>`;
}

function layout(ctx: PageContext, body: string, flash?: string): string {
  const mode = ctx.writes
    ? '<span class="badge rw">writes enabled</span>'
    : '<span class="badge">read-only</span>';
  const logout = ctx.auth ? actionForm(ctx, '/logout', 'Log out') : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>${esc(ctx.title)}</title><style nonce="${esc(ctx.nonce)}">${STYLE}</style></head>
<body data-base="${esc(ctx.base)}" data-csrf="${esc(ctx.csrf)}" data-writes="${ctx.writes ? '1' : ''}" data-poll="${ctx.pollMs}">
<header><h1><a href="${esc(ctx.base || '/')}">${esc(ctx.title)}</a></h1>${mode}<span class="grow"></span><span class="muted" id="updated"></span>${logout}</header>
<main>${flash ? `<div class="flash" id="flash">${esc(flash)}</div>` : ''}<div class="flash error" id="poll-error" hidden></div>${body}</main>
<script nonce="${esc(ctx.nonce)}">${SCRIPT}</script></body></html>`;
}

function card(id: string, label: string, value: string, spark: boolean): string {
  return `<div class="card"><div class="label">${esc(label)}</div><div class="value" id="t-${id}">${esc(value)}</div>${spark ? `<svg class="spark" id="s-${id}" viewBox="0 0 100 28" preserveAspectRatio="none"><polyline points=""></polyline></svg>` : ''}</div>`;
}

function channelRows(ctx: PageContext, s: DashboardStatus): string {
  if (s.channels.length === 0) return '';
  return s.channels
    .map(
      (c) =>
        `<tr data-channel="${esc(c.channel)}"><td>${esc(c.channel)}</td><td class="n">${c.pending}</td><td class="n">${c.scheduled}</td><td class="n${c.failed > 0 ? ' bad' : ''}">${c.failed}</td><td class="n">${c.oldestPendingAgeMs === null ? '–' : esc(formatAge(c.oldestPendingAgeMs))}</td><td>${c.nextRunAt === null ? '–' : `<time datetime="${esc(c.nextRunAt)}">${esc(c.nextRunAt)}</time>`}</td><td><svg class="spark" viewBox="0 0 100 20" preserveAspectRatio="none"><polyline points=""></polyline></svg></td>${
          ctx.writes
            ? `<td>${c.failed > 0 ? `${actionForm(ctx, '/retry', 'Retry failed', { channel: c.channel })} ${actionForm(ctx, '/purge', 'Purge failed', { channel: c.channel }, true)}` : ''}</td>`
            : ''
        }</tr>`,
    )
    .join('');
}

const timeTag = (iso: string | null, none = '–'): string =>
  iso === null ? none : `<time datetime="${esc(iso)}">${esc(iso)}</time>`;

/** A listener's channels: the published list, `+N` when cut short, `?` for an older listener. */
function channelList(l: DashboardStatus['listeners'][number]): string {
  if (l.channels === null) return '?';
  return `${l.channels.join(', ')}${l.moreChannels > 0 ? ` (+${l.moreChannels})` : ''}`;
}

function listenerRows(s: DashboardStatus): string {
  return s.listeners
    .map(
      (l) =>
        `<tr><td>${esc(l.host ?? '?')}</td><td class="n">${l.processId ?? '?'}</td><td>${esc(channelList(l))}</td><td>${timeTag(l.lastClaimAt, l.host === null ? '?' : 'none yet')}</td><td class="n">${l.handled ?? '?'}</td><td>${esc(l.applicationName || '(none)')}</td><td>${esc(l.clientAddr ?? 'local socket')} · ${l.pid}</td><td>${timeTag(l.connectedAt)}</td></tr>`,
    )
    .join('');
}

function scheduleRows(s: DashboardStatus): string {
  return s.schedules
    .map(
      (x) =>
        `<tr data-schedule="${esc(x.name)}"><td>${esc(x.name)}</td><td><code>${esc(x.cron)}</code></td><td>${esc(x.timezone)}</td><td>${timeTag(x.nextRunAt, 'never')}</td><td>${timeTag(x.lastSlot)}</td></tr>`,
    )
    .join('');
}

function failedRows(ctx: PageContext, s: DashboardStatus): string {
  return s.failed.recent
    .map(
      (f) =>
        `<tr><td><a href="${esc(`${ctx.base}/failed/${f.id}`)}">#${esc(f.id)}</a></td><td>${esc(f.channel)}</td><td>${esc(f.op ?? '')}</td><td class="n">${f.attempts}</td><td>${f.failedAt === null ? '' : `<time datetime="${esc(f.failedAt)}">${esc(f.failedAt)}</time>`}</td><td class="err" title="${esc(f.error)}">${esc(f.error)}</td></tr>`,
    )
    .join('');
}

/** Sections of the main page, in order. */
function mainSections(ctx: PageContext, s: DashboardStatus): string[] {
  const bulk = ctx.writes
    ? `${actionForm(ctx, '/retry', 'Retry all', { all: '1' })} ${actionForm(ctx, '/purge', 'Purge all', { all: '1' }, true)}`
    : '';
  return [
    `<div class="cards">${card('pending', 'Pending (due)', String(s.totals.pending), true)}${card('scheduled', 'Scheduled (delayed)', String(s.totals.scheduled), true)}${card('failed', 'Failed', String(s.totals.failed), true)}${card('listeners', 'Listeners', String(s.listeners.length), false)}${card('written', 'Written / s', '–', true)}${card('handled', 'Handled / s', '–', true)}</div>`,
    `<section><h2>Channels</h2><table id="channels"><thead><tr><th>channel</th><th class="n">pending</th><th class="n">scheduled</th><th class="n">failed</th><th class="n">oldest pending</th><th>next retry</th><th>backlog</th>${ctx.writes ? '<th></th>' : ''}</tr></thead><tbody>${channelRows(ctx, s)}</tbody></table><div class="empty" id="channels-empty"${s.channels.length ? ' hidden' : ''}>No notifications stored and no listener has run yet.</div></section>`,
    `<section><h2>Listeners</h2><table id="listeners"><thead><tr><th>host</th><th class="n">pid</th><th>channels</th><th>last claim</th><th class="n">handled</th><th>application_name</th><th>client · backend pid</th><th>connected since</th></tr></thead><tbody>${listenerRows(s)}</tbody></table><div class="empty" id="listeners-empty"${s.listeners.length ? ' hidden' : ''}>No listener connected.</div><div class="note">Listeners publish host, pid, channels and their last claim on their LISTEN connection (pg_stat_activity, refreshed at most every 5 s while they claim; other roles' connections need pg_read_all_stats). ? : a listener of an older version.</div></section>`,
    `<section><h2>Schedules</h2><table id="schedules"><thead><tr><th>schedule</th><th>cron</th><th>timezone</th><th>next run</th><th>last slot</th></tr></thead><tbody>${scheduleRows(s)}</tbody></table><div class="empty" id="schedules-empty"${s.schedules.length ? ' hidden' : ''}>No schedules installed.</div><div class="note">Last slot: the latest slot fired or skipped, or when the migration installed the schedule. A schedule's runs are notifications on the channel of the same name (see Channels).</div></section>`,
    `<section><h2>Failed notifications <span class="badge" id="failed-total">${s.failed.total}</span><span class="grow"></span>${bulk}</h2><table id="failed"><thead><tr><th>id</th><th>channel</th><th>op</th><th class="n">attempts</th><th>failed at</th><th>last error</th></tr></thead><tbody>${failedRows(ctx, s)}</tbody></table><div class="empty" id="failed-empty"${s.failed.recent.length ? ' hidden' : ''}>No failed notifications.</div></section>`,
  ];
}

/** The main page: cards, channels, listeners, schedules, failed notifications; the script keeps them fresh. */
export function mainPage(ctx: PageContext, s: DashboardStatus, flash?: string): string {
  return layout(ctx, mainSections(ctx, s).join('\n'), flash);
}

function json(value: unknown): string {
  return value === null || value === undefined ? 'null' : JSON.stringify(value, null, 2);
}

/** One failed notification: its error, payload or row images, context, and retry/purge buttons. */
export function failedPage(ctx: PageContext, f: FailedDetail): string {
  const actions = ctx.writes
    ? `${actionForm(ctx, `/failed/${f.id}/retry`, 'Retry')} ${actionForm(ctx, `/failed/${f.id}/purge`, 'Purge', {}, true)}`
    : '<span class="muted">read-only</span>';
  const images =
    f.op === null
      ? `<section><h2>Payload</h2><pre id="payload">${esc(json(f.payload))}</pre></section>`
      : `<section><h2>Old row</h2><pre id="old">${esc(json(f.old))}</pre></section><section><h2>New row</h2><pre id="new">${esc(json(f.new))}</pre></section>`;
  const body = `<p><a href="${esc(ctx.base || '/')}">← all channels</a></p>
<section><h2>Failed notification #${esc(f.id)}<span class="grow"></span>${actions}</h2><dl>
<dt>channel</dt><dd>${esc(f.channel)}</dd><dt>op</dt><dd>${esc(f.op ?? '(custom channel)')}</dd><dt>attempts</dt><dd>${f.attempts}</dd>
<dt>created</dt><dd><time datetime="${esc(f.createdAt)}">${esc(f.createdAt)}</time></dd><dt>failed</dt><dd>${f.failedAt === null ? '' : `<time datetime="${esc(f.failedAt)}">${esc(f.failedAt)}</time>`}</dd></dl></section>
<section><h2>Last error</h2><pre id="error" class="bad">${esc(f.error ?? '')}</pre></section>
${images}
<section><h2>Context</h2><pre id="context">${esc(json(f.context))}</pre></section>`;
  return layout({ ...ctx, pollMs: 0 }, body);
}

/** A page with one message (not found, error). */
export function messagePage(ctx: PageContext, heading: string, text: string): string {
  return layout(
    { ...ctx, pollMs: 0 },
    `<p><a href="${esc(ctx.base || '/')}">← all channels</a></p><section><h2>${esc(heading)}</h2><div class="empty">${esc(text)}</div></section>`,
  );
}

/** The log-in form: posts the token once; the response sets an HttpOnly session cookie. */
export function loginPage(ctx: PageContext, failed: boolean): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="no-referrer">
<title>${esc(ctx.title)}: log in</title><style nonce="${esc(ctx.nonce)}">${STYLE}</style></head>
<body><section class="login"><h2>${esc(ctx.title)}</h2><form method="post" action="${esc(`${ctx.base}/login`)}">${csrfInput(ctx)}
<label for="token">Access token</label><input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
${failed ? '<p class="bad">Wrong token.</p>' : ''}<button type="submit">Log in</button></form></section></body></html>`;
}

/**
 * The page's script: polls `api/status`, updates the cards and tables with `textContent`, keeps the
 * last 60 samples for sparklines (totals, per-channel backlog, and written / handled per second from
 * the table's insert / delete counters), shows relative times, and asks before destructive posts.
 */
const SCRIPT = `(() => {
const d = document, b = d.body.dataset, base = b.base || '', poll = Number(b.poll) || 0, writes = b.writes === '1';
const N = 60, hist = { pending: [], scheduled: [], failed: [], written: [], handled: [] }, backlog = new Map();
const rates = [];
const $ = (id) => d.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = tag === 'svg' || tag === 'polyline' ? d.createElementNS('http://www.w3.org/2000/svg', tag) : d.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const k of kids) e.append(k instanceof Node ? k : d.createTextNode(String(k)));
  return e;
}
function push(a, v) { a.push(v); if (a.length > N) a.shift(); }
function draw(svg, values) {
  if (!svg) return;
  const line = svg.querySelector('polyline'); if (!line) return;
  const h = svg.viewBox.baseVal.height || 28, max = Math.max(1, ...values), n = values.length;
  line.setAttribute('points', values.map((v, i) => ((n < 2 ? 100 : (i * 100) / (N - 1)) + (n < N ? ((N - n) * 100) / (N - 1) : 0)).toFixed(1) + ',' + (h - 1 - (v / max) * (h - 2)).toFixed(1)).join(' '));
}
function age(ms) {
  if (ms < 1000) return Math.round(ms) + 'ms';
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
  return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
}
function when(iso) {
  const t = el('time', { datetime: iso, title: iso });
  t.textContent = rel(iso); return t;
}
function rel(iso) {
  const ms = Date.parse(iso) - Date.now();
  return ms > 0 ? 'in ' + age(ms) : age(-ms) + ' ago';
}
function relTimes() { for (const t of d.querySelectorAll('time[datetime]')) { t.title = t.getAttribute('datetime'); t.textContent = rel(t.getAttribute('datetime')); } }
function form(action, label, fields, danger) {
  const f = el('form', { method: 'post', action: base + action }, el('input', { type: 'hidden', name: '_csrf', value: b.csrf }));
  for (const [k, v] of Object.entries(fields)) f.append(el('input', { type: 'hidden', name: k, value: v }));
  f.append(el('button', danger ? { type: 'submit', class: 'danger', 'data-confirm': '1' } : { type: 'submit' }, label));
  return f;
}
function fill(id, rows) { const t = $(id); if (!t) return; t.tBodies[0].replaceChildren(...rows); const e = $(id + '-empty'); if (e) e.hidden = rows.length > 0; }
function render(s) {
  const now = Date.now();
  for (const k of ['pending', 'scheduled', 'failed']) { $('t-' + k).textContent = s.totals[k]; push(hist[k], s.totals[k]); draw($('s-' + k), hist[k]); }
  $('t-listeners').textContent = s.listeners.length;
  // Rates over the last 5 s or more: the statistics system publishes the counters about once a
  // second, so two polls 300 ms apart often see no change at all.
  if (s.counters) {
    rates.push({ at: now, c: s.counters });
    while (rates.length > 2 && now - rates[1].at >= 5000) rates.shift();
    const first = rates[0];
    if (first.at < now) {
      const dt = (now - first.at) / 1000;
      const w = Math.max(0, s.counters.inserted - first.c.inserted) / dt, h = Math.max(0, s.counters.deleted - first.c.deleted) / dt;
      push(hist.written, w); push(hist.handled, h);
      $('t-written').textContent = w.toFixed(w < 10 ? 1 : 0); $('t-handled').textContent = h.toFixed(h < 10 ? 1 : 0);
      draw($('s-written'), hist.written); draw($('s-handled'), hist.handled);
    }
  } else rates.length = 0;
  fill('channels', s.channels.map((c) => {
    const series = backlog.get(c.channel) || []; push(series, c.pending + c.scheduled); backlog.set(c.channel, series);
    const spark = el('svg', { class: 'spark', viewBox: '0 0 100 20', preserveAspectRatio: 'none' }, el('polyline', { points: '' }));
    draw(spark, series);
    const row = el('tr', { 'data-channel': c.channel }, el('td', {}, c.channel), el('td', { class: 'n' }, c.pending), el('td', { class: 'n' }, c.scheduled),
      el('td', { class: c.failed > 0 ? 'n bad' : 'n' }, c.failed), el('td', { class: 'n' }, c.oldestPendingAgeMs === null ? '–' : age(c.oldestPendingAgeMs)),
      el('td', {}, c.nextRunAt === null ? '–' : when(c.nextRunAt)), el('td', {}, spark));
    if (writes) row.append(el('td', {}, ...(c.failed > 0 ? [form('/retry', 'Retry failed', { channel: c.channel }), ' ', form('/purge', 'Purge failed', { channel: c.channel }, true)] : [])));
    return row;
  }));
  fill('listeners', s.listeners.map((l) => el('tr', {}, el('td', {}, l.host === null ? '?' : l.host), el('td', { class: 'n' }, l.processId === null ? '?' : l.processId),
    el('td', {}, l.channels === null ? '?' : l.channels.join(', ') + (l.moreChannels > 0 ? ' (+' + l.moreChannels + ')' : '')),
    el('td', {}, l.lastClaimAt ? when(l.lastClaimAt) : l.host === null ? '?' : 'none yet'), el('td', { class: 'n' }, l.handled === null ? '?' : l.handled),
    el('td', {}, l.applicationName || '(none)'), el('td', {}, (l.clientAddr || 'local socket') + ' · ' + l.pid), el('td', {}, when(l.connectedAt)))));
  fill('schedules', s.schedules.map((x) => el('tr', { 'data-schedule': x.name }, el('td', {}, x.name), el('td', {}, el('code', {}, x.cron)), el('td', {}, x.timezone),
    el('td', {}, x.nextRunAt ? when(x.nextRunAt) : 'never'), el('td', {}, when(x.lastSlot)))));
  $('failed-total').textContent = s.failed.total;
  fill('failed', s.failed.recent.map((f) => el('tr', {}, el('td', {}, el('a', { href: base + '/failed/' + encodeURIComponent(f.id) }, '#' + f.id)), el('td', {}, f.channel), el('td', {}, f.op || ''),
    el('td', { class: 'n' }, f.attempts), el('td', {}, f.failedAt ? when(f.failedAt) : ''), el('td', { class: 'err', title: f.error }, f.error))));
  $('updated').textContent = 'updated ' + new Date(s.checkedAt).toLocaleTimeString();
}
async function tick() {
  try {
    const r = await fetch(base + '/api/status', { headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' });
    if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || 'HTTP ' + r.status);
    render(await r.json()); $('poll-error').hidden = true;
  } catch (e) { const p = $('poll-error'); p.textContent = 'Cannot refresh: ' + e.message; p.hidden = false; }
  setTimeout(tick, poll);
}
d.addEventListener('submit', (e) => { const btn = e.target.querySelector('[data-confirm]'); if (btn && !confirm(btn.textContent + ': this deletes failed notifications for good. Continue?')) e.preventDefault(); });
relTimes(); setInterval(relTimes, 5000);
if (poll > 0 && $('t-pending')) tick();
})();`;

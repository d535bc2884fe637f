import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import * as v from 'valibot';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { channel } from '../src/channel.ts';
import { isPgPubSubError } from '../src/errors.ts';
import { createDashboard, type DashboardStatus, toNodeHandler } from '../src/index.ts';
import { notify } from '../src/notify.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { schedule } from '../src/schedule.ts';
import { upsertScheduleSql } from '../src/storage/schedules.ts';
import { runCli, startCli } from './fixtures/cli-run.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const t = useTestDatabase();
const work = channel('dash_work', v.object({ n: v.number() }));
const TOKEN = 'test-token-0123456789abcdef';
const ORIGIN = 'http://dash.test';

const running: Listener<any>[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.stop({ timeoutMs: 5000 })));
  await t.sql`TRUNCATE pgpubsub.notifications RESTART IDENTITY`;
  await t.sql`DELETE FROM pgpubsub.wakeups`;
  await t.sql`DELETE FROM pgpubsub.schedules`;
});

const HOSTILE_PAYLOAD = { x: '</pre><script>alert("payload")</script>', y: "' onmouseover='alert(1)" };
const HOSTILE_ERROR = 'Error: <img src=x onerror=alert("error")> & "quotes"';

async function deadLetter(
  channelName: string,
  payload: unknown = { n: 1 },
  error = 'Error: boom',
): Promise<string> {
  const [row] = await t.sql`
    INSERT INTO pgpubsub.notifications (channel, payload, status, attempts, last_error, failed_at)
    VALUES (${channelName}, ${JSON.stringify(payload)}::jsonb, 'failed', 3, ${error}, now())
    RETURNING id::text`;
  return row!.id as string;
}

async function statusOf(id: string): Promise<string | undefined> {
  const [row] = await t.sql`SELECT status FROM pgpubsub.notifications WHERE id = ${id}`;
  return row?.status as string | undefined;
}

function req(path: string, init: RequestInit & { token?: string } = {}): Request {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  return new Request(`${ORIGIN}${path}`, { ...init, headers });
}

/** A same-origin form POST, as the browser sends it from the dashboard's own page. */
function post(
  path: string,
  fields: Record<string, string>,
  extra: Record<string, string> = {},
  token = TOKEN,
) {
  return req(path, {
    method: 'POST',
    token,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      origin: ORIGIN,
      'sec-fetch-site': 'same-origin',
      ...extra,
    },
    body: new URLSearchParams(fields).toString(),
  });
}

async function csrfOf(handler: (r: Request) => Promise<Response>, token?: string): Promise<string> {
  const page = await (await handler(req('/', token ? { token } : {}))).text();
  const match = /data-csrf="([0-9a-f]+)"/.exec(page);
  expect(match, 'page carries a CSRF token').not.toBeNull();
  return match![1]!;
}

describe('createDashboard: reading', () => {
  it('api/status reports pending, scheduled, failed, oldest age, listeners and failures', async () => {
    await t.sql`
      INSERT INTO pgpubsub.notifications (channel, payload, run_at) VALUES
        ('dash_work', '{"n":1}', now() - interval '30 seconds'),
        ('dash_work', '{"n":2}', now()),
        ('dash_work', '{"n":3}', now() + interval '1 hour')`;
    const id = await deadLetter('dash_other');
    const listener = createListener(t.db, { pollIntervalMs: false }).on(
      channel('dash_idle', v.object({})),
      () => {},
    );
    running.push(listener);
    await listener.start();

    const dashboard = createDashboard(t.db);
    const response = await dashboard(req('/api/status'));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = (await response.json()) as DashboardStatus;
    expect(body.totals).toEqual({ pending: 2, scheduled: 1, failed: 1 });
    const byName = Object.fromEntries(body.channels.map((c) => [c.channel, c]));
    expect(byName.dash_work).toMatchObject({ pending: 2, scheduled: 1, failed: 0 });
    expect(byName.dash_work!.oldestPendingAgeMs).toBeGreaterThanOrEqual(29_000);
    expect(byName.dash_other).toMatchObject({ pending: 0, failed: 1 });
    expect(body.failed.total).toBe(1);
    expect(body.failed.recent[0]).toMatchObject({
      id,
      channel: 'dash_other',
      attempts: 3,
      error: 'Error: boom',
    });
    expect(body.listeners.length).toBeGreaterThanOrEqual(1);
    expect(body.listeners[0]).toMatchObject({ pid: expect.any(Number), connectedAt: expect.any(String) });
    expect(body.writes).toBe(false);
    expect(body.schedules).toEqual([]);
    expect(body.counters).toMatchObject({ inserted: expect.any(Number), deleted: expect.any(Number) });

    const detail = await dashboard(req(`/api/failed/${id}`));
    expect(await detail.json()).toMatchObject({
      id,
      channel: 'dash_other',
      payload: { n: 1 },
      error: 'Error: boom',
    });
    expect((await dashboard(req('/api/failed/999999'))).status).toBe(404);
    expect((await dashboard(req('/api/failed/abc'))).status).toBe(404);
  });

  it('shows each listener (host, pid, channels, last claim, handled) and each schedule with its next run', async () => {
    const nightly = schedule('dash_nightly', '0 3 * * *', { timezone: 'Europe/Berlin' });
    await t.sql.unsafe(upsertScheduleSql({ name: nightly.name, ...nightly.schedule }, 'pgpubsub'));
    await t.sql`UPDATE pgpubsub.schedules SET last_slot = '2026-01-10T02:00:00Z' WHERE name = 'dash_nightly'`;
    const handled: number[] = [];
    const listener = createListener(t.db, { pollIntervalMs: false })
      .on(work, ({ payload }) => {
        handled.push(payload.n);
      })
      .on(channel('dash_quiet', v.object({})), () => {});
    running.push(listener);
    await listener.start();
    const dashboard = createDashboard(t.db);
    const mine = async () => {
      const body = (await (await dashboard(req('/api/status'))).json()) as DashboardStatus;
      return { body, me: body.listeners.find((l) => l.processId === process.pid) };
    };

    // Before any claim: host, pid and channels are published at once, no last claim yet.
    const first = await mine();
    expect(first.me).toMatchObject({
      host: hostname(),
      processId: process.pid,
      channels: ['dash_work', 'dash_quiet'],
      moreChannels: 0,
      lastClaimAt: null,
      handled: 0,
    });
    expect(Date.parse(first.me!.startedAt!)).toBeLessThanOrEqual(Date.now());
    expect(first.body.schedules).toEqual([
      {
        name: 'dash_nightly',
        cron: '0 3 * * *',
        timezone: 'Europe/Berlin',
        lastSlot: '2026-01-10T02:00:00.000Z',
        nextRunAt: '2026-01-11T02:00:00.000Z', // 03:00 in Berlin (UTC+1 in January)
      },
    ]);

    const before = Date.now();
    await t.db.transaction(async (tx: any) => {
      await notify(tx, work, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    });
    await waitFor(() => handled.length === 3, { timeoutMs: 10_000, what: 'handled 3' });
    // The last claim is republished within 5 s of the claim (a heartbeat on the LISTEN session).
    let me = first.me;
    await waitFor(
      async () => {
        me = (await mine()).me;
        return me?.handled === 3;
      },
      { timeoutMs: 10_000, what: 'presence shows 3 handled' },
    );
    expect(Date.parse(me!.lastClaimAt!)).toBeGreaterThanOrEqual(before - 1);
    expect(Date.parse(me!.lastClaimAt!)).toBeLessThanOrEqual(Date.now());

    const page = await (await dashboard(req('/'))).text();
    expect(page).toContain(
      `<td>${hostname()}</td><td class="n">${process.pid}</td><td>dash_work, dash_quiet</td>`,
    );
    expect(page).toContain(`<time datetime="${me!.lastClaimAt}">`);
    expect(page).toMatch(
      /<tr data-schedule="dash_nightly"><td>dash_nightly<\/td><td><code>0 3 \* \* \*<\/code><\/td><td>Europe\/Berlin<\/td><td><time datetime="2026-01-11T02:00:00.000Z">/,
    );

    // After stop() the listener is gone from the list.
    await listener.stop({ timeoutMs: 5000 });
    await waitFor(async () => (await mine()).me === undefined, { timeoutMs: 5000, what: 'listener gone' });
  });

  it('serves the page with a strict CSP, and escapes hostile payloads, errors and channel names', async () => {
    const id = await deadLetter('<b>chan</b>', HOSTILE_PAYLOAD, HOSTILE_ERROR);
    // The same names in a listener's published channels and in a schedule.
    const hostile = channel('<img src=x onerror=alert("listener")>', v.object({}));
    const listener = createListener(t.db, { pollIntervalMs: false }).on(hostile, () => {});
    running.push(listener);
    await listener.start();
    const tagged = schedule('<b>sched</b>', '0 3 * * *');
    await t.sql.unsafe(upsertScheduleSql({ name: tagged.name, ...tagged.schedule }, 'pgpubsub'));
    const dashboard = createDashboard(t.db, { allowWrites: true, token: TOKEN });
    for (const path of ['/', `/failed/${id}`]) {
      const response = await dashboard(req(path, { token: TOKEN }));
      expect(response.status).toBe(200);
      const csp = response.headers.get('content-security-policy') ?? '';
      expect(csp).toMatch(/default-src 'none'/);
      expect(csp).toMatch(/script-src 'nonce-[0-9a-f]{32}'/);
      expect(csp).toMatch(/frame-ancestors 'none'/);
      expect(response.headers.get('x-frame-options')).toBe('DENY');
      const page = await response.text();
      expect(page.match(/<script/g)).toHaveLength(1); // only the dashboard's own, nonce'd script
      expect(page).not.toContain('<script>alert');
      expect(page).not.toContain('<img');
      expect(page).not.toContain('<b>chan</b>');
      expect(page).not.toContain("' onmouseover='");
      expect(page).toContain('&lt;b&gt;chan&lt;/b&gt;');
      if (path === '/') {
        expect(page).toContain('&lt;img src=x onerror=alert(&quot;listener&quot;)&gt;</td>');
        expect(page).toContain(
          '<tr data-schedule="&lt;b&gt;sched&lt;/b&gt;"><td>&lt;b&gt;sched&lt;/b&gt;</td>',
        );
      }
      expect(page).toContain('&lt;img src=x onerror=alert(&quot;error&quot;)&gt; &amp; &quot;quotes&quot;');
    }
    const detail = await (await dashboard(req(`/failed/${id}`, { token: TOKEN }))).text();
    expect(detail).toContain('&lt;/pre&gt;&lt;script&gt;alert(\\&quot;payload\\&quot;)&lt;/script&gt;');
  });

  it('mounts under basePath: links carry it, other paths are 404', async () => {
    const id = await deadLetter('dash_work');
    const dashboard = createDashboard(t.db, { basePath: '/ops/queue/' });
    expect((await dashboard(req('/'))).status).toBe(404);
    expect((await dashboard(req('/ops/queuex'))).status).toBe(404);
    const page = await (await dashboard(req('/ops/queue'))).text();
    expect(page).toContain(`href="/ops/queue/failed/${id}"`);
    expect(page).toContain('data-base="/ops/queue"');
    expect((await dashboard(req('/ops/queue/api/status'))).status).toBe(200);
    expect(() => createDashboard(t.db, { basePath: '/a b' })).toThrow(/basePath/);
  });
});

describe('createDashboard: security', () => {
  it('is read-only by default: every write is refused and changes nothing', async () => {
    const id = await deadLetter('dash_work');
    const dashboard = createDashboard(t.db);
    const page = await (await dashboard(req('/'))).text();
    expect(page).not.toContain('<form method="post"');
    expect(page).toContain('read-only');
    const csrf = await csrfOf(dashboard);
    for (const path of [`/failed/${id}/retry`, `/failed/${id}/purge`, '/retry', '/purge']) {
      const response = await dashboard(post(path, { _csrf: csrf, all: '1' }, {}, ''));
      expect(response.status).toBe(403);
      expect(await response.text()).toMatch(/read-only/);
    }
    expect(await statusOf(id)).toBe('failed');
    expect((await dashboard(req('/', { method: 'PUT' }))).status).toBe(405);
  });

  it('refuses writes without a token unless the app authenticates (externalAuth), and short tokens', () => {
    const error = (() => {
      try {
        createDashboard(t.db, { allowWrites: true });
      } catch (e) {
        return e;
      }
    })();
    expect(isPgPubSubError(error, 'INVALID_OPTIONS')).toBe(true);
    expect((error as Error).message).toMatch(/allowWrites` needs `token`/);
    expect(() => createDashboard(t.db, { allowWrites: true, externalAuth: true })).not.toThrow();
    expect(() => createDashboard(t.db, { token: 'short' })).toThrow(/at least 16 characters/);
  });

  it('requires the token: Bearer for the API, a login form that sets an HttpOnly SameSite cookie', async () => {
    const dashboard = createDashboard(t.db, { token: TOKEN, basePath: '/q' });
    const anonymous = await dashboard(req('/q/api/status'));
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await dashboard(req('/q/api/status', { token: `${TOKEN}x` }))).status).toBe(401);
    expect((await dashboard(req('/q/api/status', { token: TOKEN }))).status).toBe(200);

    const loginPage = await dashboard(req('/q/'));
    expect(loginPage.status).toBe(401);
    const html = await loginPage.text();
    expect(html).toContain('type="password"');
    expect(html).not.toContain('Failed notifications');
    const csrf = /name="_csrf" value="([0-9a-f]+)"/.exec(html)![1]!;

    // Wrong token, missing CSRF token, cross-site: no cookie.
    const wrong = await dashboard(post('/q/login', { _csrf: csrf, token: 'nope' }, {}, ''));
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    expect((await dashboard(post('/q/login', { token: TOKEN }, {}, ''))).status).toBe(403);
    expect(
      (
        await dashboard(
          post('/q/login', { _csrf: csrf, token: TOKEN }, { 'sec-fetch-site': 'cross-site' }, ''),
        )
      ).status,
    ).toBe(403);

    const ok = await dashboard(post('/q/login', { _csrf: csrf, token: TOKEN }, {}, ''));
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe('/q');
    const cookie = ok.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\/q/);
    expect(cookie).not.toContain(TOKEN);
    const session = cookie.split(';')[0]!;
    const page = await dashboard(req('/q/', { headers: { cookie: session } }));
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Failed notifications');
    expect((await dashboard(req('/q/api/status', { headers: { cookie: `${session}0` } }))).status).toBe(401);
  });

  it('writes need the CSRF token and a same-origin request', async () => {
    const id = await deadLetter('dash_work');
    const dashboard = createDashboard(t.db, { token: TOKEN, allowWrites: true });
    const csrf = await csrfOf(dashboard, TOKEN);
    const path = `/failed/${id}/retry`;
    expect((await dashboard(post(path, {}))).status).toBe(403);
    expect((await dashboard(post(path, { _csrf: '0'.repeat(64) }))).status).toBe(403);
    expect((await dashboard(post(path, { _csrf: csrf }, { 'sec-fetch-site': 'cross-site' }))).status).toBe(
      403,
    );
    expect((await dashboard(post(path, { _csrf: csrf }, { 'sec-fetch-site': 'same-site' }))).status).toBe(
      403,
    );
    const evil = post(path, { _csrf: csrf }, { origin: 'http://evil.test' });
    evil.headers.delete('sec-fetch-site');
    expect((await dashboard(evil)).status).toBe(403);
    expect((await dashboard(post(path, { _csrf: csrf }, {}, ''))).status).toBe(401); // no token
    expect((await dashboard(req(path, { token: TOKEN }))).status).toBe(404); // GET never writes
    expect(await statusOf(id)).toBe('failed');

    // The CSRF token also works as a header (API clients).
    const viaHeader = await dashboard(
      post(path, {}, { 'x-csrf-token': csrf, accept: 'application/json', 'sec-fetch-site': 'same-origin' }),
    );
    expect(viaHeader.status).toBe(200);
    expect(await viaHeader.json()).toEqual({ retried: 1 });
    expect(await statusOf(id)).toBe('pending');
  });

  it('retry and purge work when enabled: one, a channel, all', async () => {
    const dashboard = createDashboard(t.db, { token: TOKEN, allowWrites: true });
    const csrf = await csrfOf(dashboard, TOKEN);
    const [a, b, c, d] = [
      await deadLetter('dash_work'),
      await deadLetter('dash_work'),
      await deadLetter('dash_other'),
      await deadLetter('dash_other'),
    ];
    const retried = await dashboard(post(`/failed/${a}/retry`, { _csrf: csrf }));
    expect(retried.status).toBe(303);
    expect(retried.headers.get('location')).toBe('/?msg=retried&n=1');
    expect(await statusOf(a!)).toBe('pending');
    const flash = await (await dashboard(req('/?msg=retried&n=1', { token: TOKEN }))).text();
    expect(flash).toContain('Re-queued 1 failed notification.');
    const again = await dashboard(post(`/failed/${a}/retry`, { _csrf: csrf }));
    expect(again.headers.get('location')).toBe('/?msg=gone');

    expect((await dashboard(post(`/failed/${b}/purge`, { _csrf: csrf }))).headers.get('location')).toBe(
      '/?msg=purged&n=1',
    );
    expect(await statusOf(b!)).toBeUndefined();

    expect((await dashboard(post('/retry', { _csrf: csrf }))).status).toBe(400);
    expect(
      (await dashboard(post('/retry', { _csrf: csrf, channel: 'dash_other' }))).headers.get('location'),
    ).toBe('/?msg=retried&n=2');
    expect([await statusOf(c!), await statusOf(d!)]).toEqual(['pending', 'pending']);
    await t.sql`UPDATE pgpubsub.notifications SET status = 'failed', failed_at = now()`;
    expect((await dashboard(post('/purge', { _csrf: csrf, all: '1' }))).headers.get('location')).toBe(
      '/?msg=purged&n=3',
    );
    const [{ n }] = (await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`) as unknown as [
      { n: number },
    ];
    expect(n).toBe(0);
  });
});

describe('toNodeHandler', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer(toNodeHandler(createDashboard(t.db, { token: TOKEN, allowWrites: true })));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('serves the handler over node:http: login cookie, page, a write, a listener handles the retry', async () => {
    const handled: number[] = [];
    const listener = createListener(t.db, { pollIntervalMs: false }).on(work, ({ payload }) => {
      handled.push(payload.n);
    });
    running.push(listener);
    await listener.start();
    const id = await deadLetter('dash_work', { n: 7 });

    const login = await fetch(`${base}/`);
    expect(login.status).toBe(401);
    const csrf = /name="_csrf" value="([0-9a-f]+)"/.exec(await login.text())![1]!;
    const form = { 'content-type': 'application/x-www-form-urlencoded', origin: base };
    const loggedIn = await fetch(`${base}/login`, {
      method: 'POST',
      headers: form,
      body: new URLSearchParams({ _csrf: csrf, token: TOKEN }),
      redirect: 'manual',
    });
    expect(loggedIn.status).toBe(303);
    const cookie = loggedIn.headers.getSetCookie()[0]!.split(';')[0]!;
    const page = await fetch(`${base}/failed/${id}`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('&quot;n&quot;: 7');

    const retry = await fetch(`${base}/failed/${id}/retry`, {
      method: 'POST',
      headers: { ...form, cookie },
      body: new URLSearchParams({ _csrf: csrf }),
      redirect: 'manual',
    });
    expect(retry.status).toBe(303);
    await waitFor(() => handled.includes(7), { what: 'the listener to handle the retried notification' });
    await waitFor(async () => (await statusOf(id)) === undefined, { what: 'the notification to be deleted' });

    const big = await fetch(`${base}/retry`, {
      method: 'POST',
      headers: { ...form, cookie },
      body: 'x'.repeat(70_000),
    });
    expect(big.status).toBe(413);
  });
});

describe('drizzle-pgpubsub dashboard (CLI)', () => {
  it('refuses a non-loopback host without a token, and --allow-writes without a token', async () => {
    const env = { DATABASE_URL: t.url };
    const open = await runCli(['dashboard', '--host', '0.0.0.0', '--port', '0'], env);
    expect(open.code).toBe(2);
    expect(open.stderr).toMatch(/--host 0\.0\.0\.0 is reachable from other machines: set an access token/);
    const writes = await runCli(['dashboard', '--allow-writes', '--port', '0'], env);
    expect(writes.code).toBe(2);
    expect(writes.stderr).toMatch(/--allow-writes requires an access token/);
    const short = await runCli(['dashboard', '--port', '0'], { ...env, PGPUBSUB_DASHBOARD_TOKEN: 'short' });
    expect(short.code).toBe(2);
  });

  it('serves the dashboard until SIGTERM, then exits 0; the token comes from the environment', async () => {
    const run = startCli(['dashboard', '--port', '0', '--allow-writes', '--base-path', '/q'], {
      DATABASE_URL: t.url,
      PGPUBSUB_DASHBOARD_TOKEN: TOKEN,
    });
    try {
      const line = await waitFor(() => run.stdout.find((l) => l.startsWith('dashboard at ')), {
        timeoutMs: 30_000,
        what: 'the dashboard to listen',
      });
      expect(line).toMatch(/writes enabled, token required/);
      const url = /^dashboard at (\S+)/.exec(line)![1]!;
      expect((await fetch(`${url.replace(/\/q$/, '')}/q/api/status`)).status).toBe(401);
      const ok = await fetch(`${url}/api/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as DashboardStatus).writes).toBe(true);
    } finally {
      run.child.kill('SIGTERM');
    }
    expect((await run.exited).code).toBe(0);
  });
});

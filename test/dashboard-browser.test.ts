/**
 * End to end in headless Chromium (Debian's `chromium`, driven by playwright-core): the page served by
 * node:http over createDashboard shows counts changing as notifications flow, opens a failure, retries
 * it, and a running listener handles it. Skips when /usr/bin/chromium is absent.
 *
 * PGPUBSUB_SCREENSHOTS=1 also writes docs/images/dashboard*.png.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import * as v from 'valibot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channel } from '../src/channel.ts';
import { createDashboard, toNodeHandler } from '../src/index.ts';
import { notify } from '../src/notify.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { schedule } from '../src/schedule.ts';
import { upsertScheduleSql } from '../src/storage/schedules.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(
    `dashboard-browser.test.ts: SKIPPED, ${CHROMIUM} not found (install Debian's chromium: apt-get install -y chromium)`,
  );
}
const SCREENSHOTS = process.env.PGPUBSUB_SCREENSHOTS === '1';

const t = useTestDatabase();
const orders = channel('order_placed', v.object({ n: v.number(), note: v.optional(v.string()) }));
const emails = channel('email_requested', v.object({ to: v.string() }));
const TOKEN = 'browser-test-token-0123456789';
const HOSTILE = '<script>window.__pwned = true; alert("xss")</script>';

/** Installs a schedule as its migration would, with its fence (last slot) at `lastSlot`. */
async function installSchedule(name: string, cron: string, timezone: string, lastSlot: string) {
  const s = schedule(name, cron, { timezone });
  await t.sql.unsafe(upsertScheduleSql({ name: s.name, ...s.schedule }, 'pgpubsub'));
  await t.sql`UPDATE pgpubsub.schedules SET last_slot = ${lastSlot}::timestamptz WHERE name = ${name}`;
}

describe.skipIf(!hasChromium)('dashboard in headless Chromium', () => {
  let server: Server;
  let base: string;
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  const alerts: string[] = [];
  const listeners: Listener<any>[] = [];

  beforeAll(async () => {
    const dashboard = createDashboard(t.db, { token: TOKEN, allowWrites: true, pollIntervalMs: 300 });
    server = createServer(toNodeHandler(dashboard));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    profile = mkdtempSync(join(tmpdir(), 'pgpubsub-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 860 },
      colorScheme: 'light',
      timeout: 60_000,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(20_000);
    page.on('dialog', (dialog) => {
      if (dialog.type() === 'confirm') void dialog.accept();
      else {
        alerts.push(dialog.message());
        void dialog.dismiss();
      }
    });
  }, 90_000);

  afterAll(async () => {
    await Promise.all(listeners.map((l) => l.stop({ timeoutMs: 5000 })));
    await context?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  const text = (id: string) => page.locator(`#${id}`).textContent();
  const shot = async (name: string, fullPage = true) => {
    if (!SCREENSHOTS) return;
    mkdirSync('docs/images', { recursive: true });
    await page.screenshot({ path: `docs/images/${name}.png`, fullPage });
  };

  it('logs in, watches counts change, sees the listener and schedules, opens a failure, retries it, and a listener handles it', async () => {
    await installSchedule('nightly_report', '0 3 * * *', 'Europe/Berlin', '2026-01-10T02:00:00Z');
    await page.goto(`${base}/`);
    await page.locator('#token').fill(TOKEN);
    await page.locator('button[type=submit]').click();
    await page.waitForURL(`${base}/`);
    await expect.poll(() => text('t-pending')).toBe('0');

    // Work arrives while no listener runs: the page's polling shows it pending.
    for (let n = 1; n <= 5; n++) await notify(t.db, orders, { n });
    await notify(t.db, orders, { n: 13, note: HOSTILE });
    await notify(t.db, emails, { to: 'a@example.com' });
    await expect.poll(() => text('t-pending'), { timeout: 20_000 }).toBe('7');
    await expect
      .poll(() => page.locator('#channels tr[data-channel="order_placed"] td').nth(1).textContent())
      .toBe('6');

    // A listener handles them; order 13 fails (one attempt) until `allow13` flips.
    let allow13 = false;
    const handled: number[] = [];
    const listener = createListener(t.db, { maxAttempts: 1, pollIntervalMs: 500 })
      .on(orders, ({ payload }) => {
        if (payload.n === 13 && !allow13) throw new Error(`payment gateway refused order 13: ${HOSTILE}`);
        handled.push(payload.n);
      })
      .on(emails, () => {});
    listeners.push(listener);
    await listener.start();
    // A listener whose channel name is markup: the script renders it as text (checked below: no alert, no __pwned).
    const markup = createListener(t.db, { pollIntervalMs: false }).on(
      channel('<img src=x onerror="window.__pwned=true;alert(1)">', v.object({})),
      () => {},
    );
    listeners.push(markup);
    await markup.start();
    await expect.poll(() => text('t-failed'), { timeout: 30_000 }).toBe('1');
    await expect.poll(() => text('t-pending')).toBe('0');
    // Throughput: the table's delete counter moved, so handled / s is above 0 for a few seconds.
    await expect.poll(async () => Number(await text('t-handled')), { timeout: 10_000 }).toBeGreaterThan(0);
    await expect.poll(() => text('t-listeners')).not.toBe('0');
    await expect.poll(() => page.locator('#failed tbody tr').count()).toBe(1);

    // The listener's row: host, pid, channels; its last claim and handled count arrive within 5 s.
    const row = page.locator('#listeners tbody tr', { hasText: 'order_placed, email_requested' });
    await expect.poll(() => row.count()).toBe(1);
    const cell = (n: number) => row.locator('td').nth(n).textContent();
    expect(await cell(0)).toBe(hostname());
    expect(await cell(1)).toBe(String(process.pid));
    await expect.poll(() => cell(4), { timeout: 15_000 }).toBe('6'); // 5 orders and the email; 13 failed
    expect(await cell(3)).toMatch(/^\d+(ms|s) ago$/);
    // The schedule's next run: 03:00 in Berlin after the last slot.
    await expect
      .poll(() => page.locator('#listeners tbody td', { hasText: '<img src=x onerror=' }).count())
      .toBe(1);
    const nightly = page.locator('#schedules tr[data-schedule="nightly_report"]');
    expect(await nightly.locator('td').nth(1).textContent()).toBe('0 3 * * *');
    expect(await nightly.locator('td').nth(3).locator('time').getAttribute('datetime')).toBe(
      '2026-01-11T02:00:00.000Z',
    );
    expect(await nightly.locator('td').nth(4).locator('time').getAttribute('datetime')).toBe(
      '2026-01-10T02:00:00.000Z',
    );

    // Open the failure: its error and payload are shown as text, never run.
    await page.locator('#failed tbody a').first().click();
    await page.waitForURL(/\/failed\/\d+$/);
    expect(await text('error')).toContain('payment gateway refused order 13: <script>');
    expect(await text('payload')).toContain(
      '"note": "<script>window.__pwned = true; alert(\\"xss\\")</script>"',
    );
    expect(await page.evaluate(() => (globalThis as { __pwned?: boolean }).__pwned)).toBeUndefined();
    await shot('dashboard-failure');

    // Retry it: back on the main page, the listener handles it and the failure disappears.
    allow13 = true;
    await page.locator('form[action$="/retry"] button').click();
    await page.waitForURL(/\?msg=retried&n=1$/);
    expect(await text('flash')).toBe('Re-queued 1 failed notification.');
    await waitFor(() => handled.includes(13), { timeoutMs: 30_000, what: 'the listener to handle order 13' });
    await expect.poll(() => text('t-failed'), { timeout: 20_000 }).toBe('0');
    await expect.poll(() => page.locator('#failed tbody tr').count()).toBe(0);
    expect(alerts).toEqual([]);
  }, 120_000);

  it.runIf(SCREENSHOTS)(
    'docs screenshots: a few channels under load',
    async () => {
      await Promise.all(listeners.splice(0).map((l) => l.stop({ timeoutMs: 5000 })));
      await t.sql`TRUNCATE pgpubsub.notifications`;
      const webhooks = channel('webhook_delivery', v.object({ url: v.string(), event: v.string() }));
      const refused = (message: string, at: string) => {
        const error = new Error(message);
        error.stack = `Error: ${message}\n    at deliver (src/webhooks.ts:${at})\n    at handler (src/listeners.ts:31:5)`;
        return error;
      };
      let b = 0;
      const shop = createListener(t.db, { pollIntervalMs: 1000 })
        .on(orders, () => {})
        .on(emails, () => new Promise<void>((resolve) => setTimeout(resolve, 600)));
      const hooks = createListener(t.db, { pollIntervalMs: 1000 }).on(
        webhooks,
        ({ payload }) => {
          if (payload.url.endsWith('/0')) {
            throw refused(`POST ${payload.url} responded 503 Service Unavailable`, '58:13');
          }
        },
        { maxAttempts: 2, backoff: () => (b++ % 2 ? 120_000 : 500) },
      );
      listeners.push(shop, hooks);
      await shop.start();
      await hooks.start();
      await t.sql`DELETE FROM pgpubsub.schedules`;
      const hour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString();
      const day = new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000 + 2 * 3_600_000).toISOString();
      await installSchedule('hourly_cleanup', '0 * * * *', 'UTC', hour);
      await installSchedule('nightly_report', '0 3 * * *', 'Europe/Berlin', day);
      await installSchedule('weekly_digest', '0 9 * * 1', 'America/New_York', day);
      await page.goto(`${base}/`);
      let producing = true;
      const producer = (async () => {
        for (let k = 0; producing; k++) {
          await t.db.transaction(async (tx) => {
            for (let n = 0; n < 8; n++) await notify(tx, orders, { n: k * 8 + n });
            for (let n = 0; n < 3; n++) await notify(tx, emails, { to: `user${k}.${n}@example.com` });
            for (let n = 0; n < 2; n++) {
              await notify(tx, webhooks, { url: `https://hooks.example.com/${k % 3}`, event: 'order.paid' });
            }
          });
          await new Promise((resolve) => setTimeout(resolve, 150)); // the workload's pace
        }
      })();
      // Let the sparklines fill while the workload runs (a picture for the docs, not a wait for work).
      await new Promise((resolve) => setTimeout(resolve, 15_000));
      await expect.poll(() => text('t-failed'), { timeout: 30_000 }).not.toBe('0');
      await expect.poll(() => page.locator('#listeners tbody tr').count()).toBe(2);
      await shot('dashboard', false);
      // The overview: channels, listeners (last claim) and schedules (next run) in one picture.
      await page.setViewportSize({ width: 1280, height: 1000 });
      if (SCREENSHOTS) {
        const bottom = await page
          .locator('#schedules')
          .evaluate(
            (e) =>
              e.closest('section')!.getBoundingClientRect().bottom +
              (globalThis as unknown as { scrollY: number }).scrollY,
          );
        await page.screenshot({
          path: 'docs/images/dashboard-overview.png',
          fullPage: true,
          clip: { x: 0, y: 0, width: 1280, height: bottom + 16 },
        });
      }
      await page.setViewportSize({ width: 1280, height: 860 });
      producing = false;
      await producer;
      await page.locator('#failed tbody a').first().click();
      await page.waitForURL(/\/failed\/\d+$/);
      await shot('dashboard-failure');
    },
    120_000,
  );
});

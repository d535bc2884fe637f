import { healthProblems, type StatusReport, status } from '../../admin.ts';
import { formatDuration } from '../../duration.ts';
import { COMMON_HELP, databaseCommand } from '../database-command.ts';
import { EXIT, usageError } from '../exit-codes.ts';
import { formatTable } from '../format.ts';
import { parseDuration, parsePositiveInt } from '../parse.ts';

/** Help text of `drizzle-pgpubsub status`. */
export const usage = `Usage: drizzle-pgpubsub status [--check [--max-age <dur>] [--max-failed <n>]] [options]

Per channel: pending (due now), scheduled (delayed jobs and retries waiting for their
backoff), failed (dead letters) and how long the oldest due notification has waited; when
any channel uses them, the next due time, prioritised due and keyed (dedup) pending counts;
then the listeners connected now (connections whose last statement is LISTEN), and each
schedule's last slot and next run.

Options:
  --check                  health check: exit 1 when a notification has failed or
                           the oldest due notification waited longer than --max-age
  --max-age <dur>          with --check (default 5m)
  --max-failed <n>         with --check: failed notifications tolerated (default 0)
${COMMON_HELP}

Exit codes: 0 (healthy), 1 unhealthy or database unreachable, 2 bad options,
78 configuration error (no DATABASE_URL, notifications table missing).`;

function render(report: StatusReport): string {
  const lines: string[] = [];
  if (report.channels.length === 0) {
    lines.push('No notifications stored and no listener has run yet.');
  } else {
    // Job columns only when some channel has prioritised or keyed work: plain output stays as it was.
    const jobs = report.channels.some((c) => c.prioritized > 0 || c.keyed > 0);
    const rows: (string | number)[][] = report.channels.map((c) => [
      c.channel,
      c.pending,
      c.scheduled,
      c.failed,
      c.oldestPendingAgeMs === null ? '-' : formatDuration(c.oldestPendingAgeMs),
      ...(jobs ? [c.nextRunAt?.toISOString() ?? '-', c.prioritized, c.keyed] : []),
    ]);
    if (report.channels.length > 1) {
      rows.push([
        '(total)',
        report.totals.pending,
        report.totals.scheduled,
        report.totals.failed,
        '',
        ...(jobs ? ['', '', ''] : []),
      ]);
    }
    const header = ['channel', 'pending', 'scheduled', 'failed', 'oldest pending'];
    if (jobs) header.push('next due', 'prioritized', 'keyed');
    lines.push(formatTable(header, rows));
  }
  if (report.schedules.length > 0) {
    lines.push(
      '',
      formatTable(
        ['schedule', 'cron', 'timezone', 'last slot', 'next run'],
        report.schedules.map((s) => [
          s.name,
          s.cron,
          s.timezone,
          s.lastSlot.toISOString(),
          s.nextRunAt === null ? 'never' : s.nextRunAt.toISOString(),
        ]),
      ),
    );
  }
  const n = report.listeners.length;
  lines.push('', `listeners connected: ${n}`);
  for (const l of report.listeners) {
    lines.push(
      `  pid ${l.pid}  ${l.applicationName || '(no application_name)'}  ${l.clientAddr ?? 'local socket'}  since ${l.connectedAt.toISOString()}`,
    );
    const p = l.presence;
    if (p) {
      lines.push(
        `    process ${p.pid} on ${p.host}; channels ${p.channels.join(', ')}${p.more ? ` (+${p.more})` : ''}; last claim ${p.lastClaimAt?.toISOString() ?? 'none yet'}; ${p.handled} handled`,
      );
    }
  }
  return lines.join('\n');
}

/** `drizzle-pgpubsub status`. */
export const command = databaseCommand({
  usage,
  options: { check: { type: 'boolean' }, 'max-age': { type: 'string' }, 'max-failed': { type: 'string' } },
  body: async (values, { db }, schema) => {
    const report = await status(db, { schema });
    const check = values.check === true;
    const maxAge = values['max-age'] as string | undefined;
    const maxFailed = values['max-failed'] as string | undefined;
    const problems = check
      ? healthProblems(report, {
          maxAgeMs: maxAge === undefined ? 5 * 60_000 : parseDuration(maxAge, '--max-age', usage),
          maxFailed: maxFailed === undefined ? 0 : parsePositiveInt(maxFailed, '--max-failed', usage, 0),
        })
      : [];
    if (values.json) {
      const out = { ...report, ...(check ? { healthy: problems.length === 0, problems } : {}) };
      console.log(JSON.stringify(out, null, 2));
    } else {
      console.log(render(report));
      if (check) {
        console.log(
          problems.length === 0 ? '\nhealthy' : `\nunhealthy:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
        );
      }
    }
    return problems.length === 0 ? EXIT.ok : EXIT.failure;
  },
  validate: (values) => {
    if (values.check !== true && (values['max-age'] !== undefined || values['max-failed'] !== undefined)) {
      throw usageError('--max-age and --max-failed go with --check.', usage);
    }
    if (values['max-age'] !== undefined) parseDuration(values['max-age'] as string, '--max-age', usage);
    if (values['max-failed'] !== undefined) {
      parsePositiveInt(values['max-failed'] as string, '--max-failed', usage, 0);
    }
  },
});

import type { ChaosReport } from './chaos.ts';

/** Prints a report as aligned lines. */
export function formatReport(r: ChaosReport): string {
  const lines: [string, string | number][] = [
    ['seed', r.seed],
    ['isolation', r.options.isolation ?? 'database default'],
    ['notifications committed', r.notifications],
    ['effects', r.effects],
    [
      'producer transactions',
      `${r.transactions.committed} committed (${r.transactions.acknowledged} acknowledged), ${r.transactions.rolledBackOnPurpose} rolled back on purpose, ${r.transactions.failedByFault} failed by a fault`,
    ],
    [
      'COMMIT outcome unknown',
      `${r.transactions.commitOutcomeUnknown.committed} resolved committed, ${r.transactions.commitOutcomeUnknown.notCommitted} resolved not committed (marker row)`,
    ],
    [
      'faults',
      Object.entries(r.faults)
        .map(([k, n]) => `${k} ${n}`)
        .join(', '),
    ],
    [
      'connections hit',
      `${r.cut.terminatedBackends} backends terminated, ${r.cut.resetConnections} reset, ${r.cut.blackholedConnections} black-holed`,
    ],
    ['PostgreSQL down', r.restartDownMs === null ? 'not restarted' : `${r.restartDownMs} ms`],
    [
      'duplicates',
      `${r.duplicates.byNotificationId} by id, ${r.duplicates.byKey} by key (${r.duplicates.extraRows} extra rows)`,
    ],
    ['lost', r.lost],
    ['phantoms (uncommitted delivered)', r.phantoms],
    ['context mismatches', r.contextMismatches],
    ['pending / failed at end', `${r.pending} / ${r.failed}`],
    [
      'NOTIFYs per 1,000 writes',
      `${r.notifies.withListeners.per1000} with listeners (${r.notifies.withListeners.notifies} for ${r.notifies.withListeners.writes}), ${r.notifies.afterStop.per1000} after stop(), ${r.notifies.afterKill.per1000} after SIGKILL`,
    ],
    ['attempts charged by faults', r.extraAttempts],
    [
      'drain after last fault',
      r.drainAfterLastFaultMs === null
        ? 'did not drain'
        : `${r.drainAfterLastFaultMs} ms (${r.backlogAtLastFault} pending at the last fault)`,
    ],
    ['production / total', `${(r.productionMs / 1000).toFixed(1)} s / ${(r.totalMs / 1000).toFixed(1)} s`],
    [
      'worker exits',
      `${r.workerExits.clean} clean, ${r.workerExits.unclean.length} unclean; postgres.js crashes: ${r.workerExits.driverCrashes} nextWrite (porsager/postgres#1154), ${r.workerExits.driverTypeCrashes} array-type lookup (#1192); ${r.workerExits.slowStops.length} slow stops`,
    ],
    [
      'listener error events',
      Object.entries(r.workerErrors)
        .map(([k, n]) => `${k}: ${n}`)
        .join('; ') || 'none',
    ],
    [
      'producer errors',
      Object.entries(r.producerErrors)
        .map(([k, n]) => `${k} ×${n}`)
        .join('; ') || 'none',
    ],
  ];
  const width = Math.max(...lines.map(([k]) => k.length));
  const out = lines.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`);
  out.push(
    r.violations.length === 0 ? 'RESULT: all guarantees held' : `RESULT: ${r.violations.length} VIOLATION(S)`,
  );
  for (const v of r.violations) out.push(`  ✗ ${v}`);
  for (const w of r.warnings) out.push(`  ! ${w}`);
  return out.join('\n');
}

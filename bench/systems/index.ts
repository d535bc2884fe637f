import { nodeAtLeast, type System, type SystemId } from './types.ts';

/**
 * Loads one system's adapter. Imported lazily so a worker process holds only its own system's
 * libraries in memory (W5 reports the listener process's RSS), and so a Node.js too old for a peer
 * never loads it.
 */
export async function loadSystem(id: SystemId): Promise<System> {
  switch (id) {
    case 'ours':
      return (await import('./ours.ts')).ours;
    case 'graphile':
      return (await import('./graphile.ts')).graphile;
    case 'pgboss':
      return (await import('./pgboss.ts')).pgboss;
    case 'graphile017':
      return (await import('./graphile017.ts')).graphile017;
    case 'pgboss10':
      return (await import('./pgboss10.ts')).pgboss10;
  }
}

export const SYSTEM_IDS: SystemId[] = ['ours', 'graphile', 'pgboss', 'graphile017', 'pgboss10'];

/** The Node.js each system's `engines` asks for (graphile-worker 0.18: ≥ 22.18; pg-boss 12: ≥ 22.12). */
const MIN_NODE: Partial<Record<SystemId, [number, number]>> = {
  graphile: [22, 18],
  pgboss: [22, 12],
};

/** Whether `id` can run on this Node.js; `npm run bench` re-runs itself on Node 24 when it can (bench/lib/node24.ts). */
export function systemRuns(id: SystemId): boolean {
  const min = MIN_NODE[id];
  return !min || nodeAtLeast(min[0], min[1]);
}

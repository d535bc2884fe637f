import type { System, SystemId } from './types.ts';

/**
 * Loads one system's adapter. Imported lazily so a worker process holds only its own system's
 * libraries in memory (W5 reports the listener process's RSS).
 */
export async function loadSystem(id: SystemId): Promise<System> {
  switch (id) {
    case 'ours':
      return (await import('./ours.ts')).ours;
    case 'graphile':
      return (await import('./graphile.ts')).graphile;
    case 'pgboss':
      return (await import('./pgboss.ts')).pgboss;
  }
}

export const SYSTEM_IDS: SystemId[] = ['ours', 'graphile', 'pgboss'];

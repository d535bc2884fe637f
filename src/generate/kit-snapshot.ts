/**
 * drizzle-kit's view of the schema after its newest migration: the tables and columns of its newest
 * snapshot, read from either migrations layout. `generate` compares channels with it to find a
 * rename or column change that drizzle-kit has not generated yet (`migration-order.ts`).
 *
 * - 0.x journal layout: `meta/<prefix>_snapshot.json`, each a full schema; the newest is the last by
 *   file name (drizzle-kit's own choice).
 * - 1.0 folder layout: `<YYYYMMDDHHMMSS>_<name>/snapshot.json`, format 9: the first is a `base`
 *   (the full schema, `ddl`), every later one a `diff` holding only its migration's `deltas`
 *   (create / drop / alter / rename of entities keyed `type\0[json identity]`), chained by `prevIds`.
 *   The newest state is the leaf (a snapshot no other names as parent), rebuilt as drizzle-kit 1.0
 *   rebuilds it: its base, then the diffs of its chain in order; with several leaves (merged
 *   branches), the others' diffs on top. Only schemas, tables and columns are followed.
 *
 * Anything unreadable gives `null`: the order check then has nothing to compare with and is skipped.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import type { MigrationFolder } from './migration-folder.ts';

/** Tables of a snapshot: `schema.table` → database column names. */
export type SnapshotTables = Map<string, Set<string>>;

/** drizzle-kit's newest snapshot, reduced to tables and columns. */
export interface LatestSnapshot {
  /** The snapshot file (for messages): the newest 0.x snapshot, or the 1.0 leaf. */
  path: string;
  tables: SnapshotTables;
}

const ORIGIN = '00000000-0000-0000-0000-000000000000';

interface Entity {
  entityType?: unknown;
  schema?: unknown;
  table?: unknown;
  name?: unknown;
}

type Delta =
  | { op: 'create'; row: Entity }
  | { op: 'drop'; key: string }
  | { op: 'alter' | 'rename'; key: string; set: Record<string, unknown> };

interface V1Snapshot {
  id: string;
  prevIds: string[];
  type: 'base' | 'diff';
  ddl: Entity[];
  deltas: Delta[];
}

/** Schemas, tables and columns, as drizzle-kit 1.0's state keeps them (tables `[schema, name]`). */
class State {
  readonly tables = new Map<string, { schema: string; name: string; columns: Set<string> }>();

  private static key(schema: string, name: string): string {
    return JSON.stringify([schema, name]);
  }

  private table(schema: string, name: string) {
    const key = State.key(schema, name);
    let table = this.tables.get(key);
    if (!table) {
      table = { schema, name, columns: new Set() };
      this.tables.set(key, table);
    }
    return table;
  }

  create(row: Entity): void {
    const { entityType, schema, table, name } = row;
    if (typeof schema !== 'string' || typeof name !== 'string') return;
    if (entityType === 'tables') this.table(schema, name);
    else if (entityType === 'columns' && typeof table === 'string')
      this.table(schema, table).columns.add(name);
  }

  drop(type: string, identity: unknown[]): void {
    const [schema, table, column] = identity as string[];
    if (type === 'schemas') {
      for (const [key, t] of this.tables) if (t.schema === schema) this.tables.delete(key);
    } else if (type === 'tables') this.tables.delete(State.key(schema!, table!));
    else if (type === 'columns') this.tables.get(State.key(schema!, table!))?.columns.delete(column!);
  }

  /** An alter or rename: a new name or schema moves the entity and, as drizzle-kit's edges do, its children. */
  change(type: string, identity: unknown[], set: Record<string, unknown>): void {
    const [schema, table, column] = identity as string[];
    if (type === 'schemas' && typeof set.name === 'string') {
      for (const t of [...this.tables.values()]) if (t.schema === schema) this.move(t, set.name, t.name);
    } else if (type === 'tables') {
      const t = this.tables.get(State.key(schema!, table!));
      if (!t) return;
      const to = {
        schema: typeof set.schema === 'string' ? set.schema : t.schema,
        name: typeof set.name === 'string' ? set.name : t.name,
      };
      if (to.schema !== t.schema || to.name !== t.name) this.move(t, to.schema, to.name);
    } else if (type === 'columns' && typeof set.name === 'string') {
      const columns = this.tables.get(State.key(schema!, table!))?.columns;
      if (columns?.delete(column!)) columns.add(set.name);
    }
  }

  private move(t: { schema: string; name: string; columns: Set<string> }, schema: string, name: string) {
    this.tables.delete(State.key(t.schema, t.name));
    const target = this.table(schema, name);
    for (const column of t.columns) target.columns.add(column);
  }

  apply(deltas: readonly Delta[]): void {
    for (const delta of deltas) {
      if (delta.op === 'create') {
        this.create(delta.row);
        continue;
      }
      const at = delta.key.indexOf('\0');
      const type = delta.key.slice(0, at);
      const identity = JSON.parse(delta.key.slice(at + 1)) as unknown[];
      if (!Array.isArray(identity)) throw new Error(`bad key ${delta.key}`);
      if (delta.op === 'drop') this.drop(type, identity);
      else this.change(type, identity, delta.set ?? {});
    }
  }

  result(): SnapshotTables {
    const out: SnapshotTables = new Map();
    for (const t of this.tables.values()) out.set(`${t.schema}.${t.name}`, t.columns);
    return out;
  }
}

function readV1(path: string): V1Snapshot {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Partial<V1Snapshot> & { dialect?: unknown };
  if (typeof raw !== 'object' || raw === null || typeof raw.id !== 'string' || !Array.isArray(raw.prevIds))
    throw new Error(`${path}: no id/prevIds`);
  if (raw.dialect !== 'postgres') throw new Error(`${path}: dialect ${String(raw.dialect)}`);
  // Format 9 marks diffs; a snapshot with a `ddl` array (format 9 base, or a 1.0 beta's full one) is whole.
  if (raw.type === 'diff') {
    if (!Array.isArray(raw.deltas)) throw new Error(`${path}: diff without deltas`);
    return { id: raw.id, prevIds: raw.prevIds, type: 'diff', ddl: [], deltas: raw.deltas };
  }
  if (!Array.isArray(raw.ddl)) throw new Error(`${path}: no ddl`);
  return { id: raw.id, prevIds: raw.prevIds, type: 'base', ddl: raw.ddl, deltas: [] };
}

/** Ids of `ids` and all their ancestors, except those in `known`. */
function history(snapshots: Map<string, V1Snapshot>, ids: readonly string[], known = new Set<string>()) {
  const found = new Set<string>();
  const stack = [...ids];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (id === ORIGIN || found.has(id) || known.has(id)) continue;
    const snapshot = snapshots.get(id);
    if (!snapshot) throw new Error(`snapshot ${id} is missing`);
    found.add(id);
    stack.push(...snapshot.prevIds);
  }
  return found;
}

/** The diffs of the other parents' histories (not in the first parent's), in folder order. */
function applyOtherParents(state: State, snapshots: Map<string, V1Snapshot>, prevIds: readonly string[]) {
  const [first, ...others] = prevIds;
  const rest = history(snapshots, others, history(snapshots, first === undefined ? [] : [first]));
  for (const [id, snapshot] of snapshots)
    if (rest.has(id) && snapshot.type === 'diff') state.apply(snapshot.deltas);
}

function reconstruct(snapshots: Map<string, V1Snapshot>, id: string): State {
  const diffs: V1Snapshot[] = [];
  let snapshot = snapshots.get(id);
  while (snapshot?.type === 'diff') {
    diffs.push(snapshot);
    snapshot = snapshots.get(snapshot.prevIds[0] ?? ORIGIN);
  }
  if (!snapshot) throw new Error(`the chain of ${id} reaches no base snapshot`);
  const state = new State();
  for (const row of snapshot.ddl) state.create(row);
  for (const diff of diffs.reverse()) {
    if (diff.prevIds.length > 1) applyOtherParents(state, snapshots, diff.prevIds);
    state.apply(diff.deltas);
  }
  return state;
}

function latestV1(paths: readonly string[]): LatestSnapshot | null {
  const snapshots = new Map<string, V1Snapshot>();
  const pathOf = new Map<string, string>();
  for (const path of paths) {
    const snapshot = readV1(path);
    snapshots.set(snapshot.id, snapshot);
    pathOf.set(snapshot.id, path);
  }
  if (snapshots.size === 0) return null;
  const parents = new Set([...snapshots.values()].flatMap((s) => s.prevIds));
  // drizzle-kit 1.0's order: the leaf of the last folder first.
  const leaves = [...snapshots.keys()].filter((id) => !parents.has(id)).reverse();
  if (leaves.length === 0) return null;
  const state = reconstruct(snapshots, leaves[0]!);
  if (leaves.length > 1) applyOtherParents(state, snapshots, leaves);
  return { path: pathOf.get(leaves[0]!)!, tables: state.result() };
}

function latestJournal(path: string): LatestSnapshot {
  const snapshot = JSON.parse(readFileSync(path, 'utf8')) as {
    tables?: Record<string, { columns?: Record<string, unknown> }>;
  };
  const tables: SnapshotTables = new Map();
  for (const [key, table] of Object.entries(snapshot.tables ?? {}))
    tables.set(key, new Set(Object.keys(table?.columns ?? {})));
  return { path, tables };
}

/**
 * drizzle-kit's newest snapshot of `folder` (tables and columns), or `null` when there is nothing to
 * compare with: no snapshot yet, an unreadable one, or no tables (tables made by hand-written
 * migrations only).
 */
export function latestSnapshot(folder: MigrationFolder): LatestSnapshot | null {
  try {
    const latest =
      folder.layout === 'journal'
        ? folder.snapshotPath === null
          ? null
          : latestJournal(folder.snapshotPath)
        : latestV1(folder.snapshotPaths);
    return latest && latest.tables.size > 0 ? latest : null;
  } catch {
    return null;
  }
}

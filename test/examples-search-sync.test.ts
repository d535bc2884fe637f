/**
 * examples/search-sync (the guide docs/sync.md): articles that existed before the channel are indexed
 * by a backfill while writers keep changing them; the index ends equal to the published articles.
 * The example imports `drizzle-pgpubsub` (dist/, built by `npm test` first), like an application.
 */
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import { describe, expect, it } from 'vitest';
import { backfill } from '../dist/index.js';
import { searchListener } from '../examples/search-sync/listeners.ts';
import { articleEvents } from '../examples/search-sync/schema.ts';
import { useTestDatabase } from './support/db.ts';

const ARTICLES = 1000;
const t = useTestDatabase();

describe('examples/search-sync', () => {
  it('backfills existing articles during writes; the index ends equal to the published articles', async () => {
    await migrate(t.db, { migrationsFolder: join(import.meta.dirname, '../examples/search-sync/drizzle') });
    // Articles written before the channel existed: no trigger fires for them (replica role skips triggers).
    await t.sql.begin(async (tx) => {
      await tx`SET LOCAL session_replication_role = replica`;
      await tx`INSERT INTO articles (title, body, published)
        SELECT 'title ' || g, 'body ' || g, g % 3 <> 0 FROM generate_series(1, ${ARTICLES}) g`;
    });
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing && i < 400; i++) {
        const id = 1 + ((i * 7919) % ARTICLES);
        if (i % 10 === 0) await t.sql`DELETE FROM articles WHERE id = ${id}`;
        else if (i % 10 === 1)
          await t.sql`INSERT INTO articles (title, body, published) VALUES ('new', 'fresh', true)`;
        else
          await t.sql`UPDATE articles SET title = md5(random()::text), published = NOT published WHERE id = ${id}`;
      }
    })();
    try {
      const result = await backfill(t.db, articleEvents, { batchSize: 500 });
      expect(result.finished).toBe(true);
      expect(result.rows).toBeGreaterThan(ARTICLES * 0.9);
    } finally {
      writing = false;
      await writer;
    }
    await searchListener(t.db).drain();
    const [diff] = await t.sql`SELECT
      (SELECT count(*)::int FROM (SELECT id, title, body FROM articles WHERE published
        EXCEPT SELECT article_id, title, body FROM search_documents WHERE NOT deleted) a) AS missing,
      (SELECT count(*)::int FROM (SELECT article_id, title, body FROM search_documents WHERE NOT deleted
        EXCEPT SELECT id, title, body FROM articles WHERE published) b) AS extra,
      (SELECT count(*)::int FROM search_documents WHERE NOT deleted) AS indexed`;
    expect(diff).toMatchObject({ missing: 0, extra: 0 });
    expect(diff?.indexed).toBeGreaterThan(ARTICLES / 2);

    // TRUNCATE empties the index.
    await t.db.execute(sql`TRUNCATE articles`);
    await searchListener(t.db).drain();
    const [left] = await t.sql`SELECT count(*)::int AS n FROM search_documents WHERE NOT deleted`;
    expect(left?.n).toBe(0);
  }, 120_000);
});

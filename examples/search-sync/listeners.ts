import { sql } from 'drizzle-orm';
import type { PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import { createListener } from 'drizzle-pgpubsub';
import { articleEvents, searchDocuments } from './schema.ts';

/**
 * Keeps `search_documents` in step with `articles`: inserts, updates and backfill snapshots upsert the
 * document of a published article (and remove an unpublished one), deletes remove it, TRUNCATE empties
 * the index (removal = a tombstone, see below). Writes go through `tx`, so they commit exactly once with the event's deletion; with an
 * external index, call its API here instead (idempotently: a retry may repeat the call).
 */
export function searchListener(db: PostgresJsDatabase) {
  return createListener(db).on(articleEvents, async (event, tx) => {
    if (event.op === 'truncate') {
      // Tombstones with this event's id: events from before the TRUNCATE cannot bring a document back.
      await tx
        .update(searchDocuments)
        .set({ deleted: true, lastEvent: sql`greatest(${searchDocuments.lastEvent}, ${BigInt(event.id)})` });
      return;
    }
    const article = event.op === 'delete' ? event.old : event.new;
    // A document is written only by an event newer than the one that wrote it last: the index ends in
    // the state of each article's latest event, in whatever order events are handled.
    await tx
      .insert(searchDocuments)
      .values({
        articleId: article.id,
        title: article.title,
        body: article.body,
        deleted: event.op === 'delete' || !article.published,
        lastEvent: BigInt(event.id),
      })
      .onConflictDoUpdate({
        target: searchDocuments.articleId,
        set: {
          title: sql`excluded.title`,
          body: sql`excluded.body`,
          deleted: sql`excluded.deleted`,
          lastEvent: sql`excluded.last_event`,
        },
        setWhere: sql`${searchDocuments.lastEvent} < excluded.last_event`,
      });
  });
}

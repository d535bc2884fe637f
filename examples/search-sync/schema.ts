import { bigint, boolean, integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import { triggerChannel } from 'drizzle-pgpubsub/schema';

export const articles = pgTable('articles', {
  id: serial().primaryKey(),
  title: text().notNull(),
  body: text().notNull(),
  published: boolean().notNull().default(false),
});

// Stands in for an external search index (Meilisearch, Typesense, Elasticsearch…): one document per
// published article. `lastEvent` is the id of the event that wrote it (see docs/sync.md); `deleted`
// keeps a tombstone so an older event never brings a deleted document back.
export const searchDocuments = pgTable('search_documents', {
  articleId: integer('article_id').primaryKey(),
  title: text().notNull(),
  body: text().notNull(),
  deleted: boolean().notNull(),
  lastEvent: bigint('last_event', { mode: 'bigint' }).notNull(),
});

// Every change of an article, TRUNCATE included (the whole index is dropped then).
export const articleEvents = triggerChannel(articles, { on: ['insert', 'update', 'delete', 'truncate'] });

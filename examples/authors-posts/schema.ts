import { index, integer, pgTable, serial, text, timestamp } from 'drizzle-orm/pg-core';
import { triggerChannel } from 'drizzle-pgpubsub/schema';

export const authors = pgTable('authors', {
  id: serial().primaryKey(),
  name: text().notNull(),
});

export const posts = pgTable(
  'posts',
  {
    id: serial().primaryKey(),
    // Deliberately not unique: the demo counts duplicates instead of letting a constraint hide them.
    authorId: integer('author_id')
      .notNull()
      .references(() => authors.id),
    content: text().notNull(),
    /** Which listener process wrote the post: `worker <index> (pid <pid>)`. */
    handledBy: text('handled_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('posts_author_id_idx').on(t.authorId)],
);

/** Every new author becomes a notification on channel `authors`, stored in the same transaction. */
export const authorEvents = triggerChannel(authors, { on: ['insert'] });

import { drizzle } from 'drizzle-orm/postgres-js';
import { createListener } from 'drizzle-pgpubsub';
import postgres from 'postgres';
import { authorEvents, posts } from './schema.ts';

// `drizzle-pgpubsub listen` sets DATABASE_URL (from the environment or --database-url) before loading
// this module, and closes `sql` after the listener has stopped.
export const sql = postgres(process.env.DATABASE_URL!, { max: 8 });
export const db = drizzle({ client: sql });

// Set by the supervisor of `listen --processes N` (1…N); unset in a single process.
const handledBy = `worker ${process.env.PGPUBSUB_WORKER_INDEX ?? '-'} (pid ${process.pid})`;

export const listener = createListener(db).on(authorEvents, async (event, tx) => {
  // Runs in the transaction that claims and deletes the notification: this post commits exactly once.
  if (event.op === 'insert') {
    await tx
      .insert(posts)
      .values({ authorId: event.new.id, content: `Welcome, ${event.new.name}!`, handledBy });
  }
});

import { defineConfig } from 'drizzle-kit';

// Run drizzle-kit and drizzle-pgpubsub from this folder:
//   npx drizzle-kit generate && npx drizzle-pgpubsub generate && npx drizzle-kit migrate
//   npx drizzle-pgpubsub backfill articles   # index the articles that already exist
export default defineConfig({
  dialect: 'postgresql',
  schema: './schema.ts',
  out: './drizzle',
  dbCredentials: { url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
});

/**
 * Tests that move gigabytes (payloads and row images past PostgreSQL's 256 MB limits) take minutes,
 * so one pass of `npm test` leaves them out unless PGPUBSUB_HEAVY_TESTS=1. The CI runs them once,
 * in its Node 24 leg (.ci/run); docs/testing.md says how to run them locally.
 */
export const HEAVY = process.env.PGPUBSUB_HEAVY_TESTS === '1';

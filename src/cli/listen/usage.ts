/** Help text of `drizzle-pgpubsub listen`. */
export const usage = `Usage: drizzle-pgpubsub listen <module> [options]

Loads <module> (TypeScript or JavaScript, no build step), which exports a listener
(\`export const listener = createListener(db).on(...)\`, or a default export), and runs
it until SIGTERM or SIGINT: then it stops claiming, lets in-flight handlers finish
(up to --shutdown-timeout), closes the module's database client and exits 0.
A second signal exits at once (unfinished handlers roll back; nothing is lost).

Options:
  --channels <a,b>          handle only these channels (default: all of the listener's)
  --concurrency <n>         claim transactions at once per process
  --batch-size <n>          notifications per claim transaction
  --processes <n>           run n worker processes under a supervisor that restarts
                            crashed workers and forwards SIGTERM/SIGINT
  --shutdown-timeout <dur>  how long to wait for in-flight handlers (default 30s)
  --poll-interval <dur>     safety sweep interval; 0 disables (default: the listener's)
  --listen-url <url>        separate session-mode URL for LISTEN (e.g. past PgBouncer)
  --database-url <url>      database URL (default: $DATABASE_URL); the module reads
                            process.env.DATABASE_URL, which this sets
  --connect-timeout <dur>   give up when the database stays unreachable this long
                            (default: keep retrying)
  --max-restarts <n>        with --processes: consecutive crashes of one worker
                            before giving up (default 5)
  --restart-delay <dur>     with --processes: first restart delay, doubled per crash
                            up to 30s (default 1s)
  --metrics-port <n>        serve Prometheus metrics at http://<host>:<n>/metrics
                            (needs prom-client; with --processes, the supervisor serves
                            the sum over its workers; 0 picks a free port, logged)
  --metrics-host <host>     address the metrics endpoint binds (default 127.0.0.1)
  --semi-space-mb <n>       start listener processes with V8 semi-spaces of n MB
                            (node --max-semi-space-size; default 2, 0 = off): caps the
                            young generation that grows while a backlog drains. Without
                            --processes, listen re-starts itself once with the flag.
                            Not added when NODE_OPTIONS or node's own flags set
                            --max-semi-space-size or --max-old-space-size
  --no-memory-cap           same as --semi-space-mb 0: Node's own heap sizing
  --json                    log JSON lines instead of text
  --log-level <level>       debug | info | warn | error (default info)
  -h, --help                show this help

Durations: 500ms, 30s, 5m, 1h (a plain number is milliseconds).
Exit codes: 0 stopped cleanly, 1 failure, 2 bad options, 78 configuration error
(module, exports, DATABASE_URL, missing table): restarting will not help.`;

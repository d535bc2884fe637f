/**
 * Why this file is a little over 300 lines: it is the dashboard's one request router (pages, API,
 * login, writes with CSRF); HTML is in html.ts, data in api.ts, security in security.ts.
 */
/**
 * `createDashboard(db)`: a Web-standard `(Request) => Promise<Response>` handler (Hono, Next.js route
 * handlers, Bun, Deno; node:http through {@link toNodeHandler}) that routes the dashboard's pages,
 * JSON API and writes.
 */
import { purgeFailed, retryFailed } from '../dead-letters.ts';
import { PgPubSubError } from '../errors.ts';
import { DEFAULT_SCHEMA } from '../storage/notifications.ts';
import type { ListenerLogger } from '../telemetry/logger.ts';
import { type AnyPgDb, dashboardStatus, failedDetail, parseId, purgeOne } from './api.ts';
import { FLASH, failedPage, loginPage, mainPage, messagePage, type PageContext } from './html.ts';
import {
  baseHeaders,
  CSRF_FIELD,
  CSRF_HEADER,
  contentSecurityPolicy,
  deriveSecrets,
  isAuthenticated,
  isHttps,
  isSameOrigin,
  randomHex,
  type Secrets,
  safeEqual,
  sessionCookie,
} from './security.ts';

/** Options of {@link createDashboard}. */
export interface DashboardOptions {
  /**
   * Path prefix the dashboard is mounted at, such as `/admin/queue` (no trailing slash). Requests
   * outside it get 404. Default `''` (the root).
   */
  basePath?: string;
  /** pg schema of the notifications table. Default `pgpubsub`. */
  schema?: string;
  /**
   * Enables the retry and purge buttons (POST only, CSRF-checked). Default `false`: read-only.
   * Requires `token`, unless `externalAuth` says the mounting app authenticates every request.
   */
  allowWrites?: boolean;
  /**
   * Access token (at least 16 characters). When set, every request needs it: API clients send
   * `Authorization: Bearer <token>`; browsers log in once through a form that sets an HttpOnly,
   * SameSite=Strict session cookie (which holds an HMAC, never the token).
   */
  token?: string;
  /**
   * Set to `true` when the mounting app authenticates every request before it reaches the handler
   * (its own middleware, SSO at the proxy): allows `allowWrites` without `token`.
   */
  externalAuth?: boolean;
  /**
   * Key of the session cookie and the CSRF token. Default: random per `createDashboard` call, so a
   * restart logs everyone out. Set the same value in every process when several serve one URL.
   */
  secret?: string;
  /**
   * Origins besides the request's own that may post writes (the `Origin` header), for a reverse proxy
   * that rewrites `Host`, e.g. `['https://ops.example.com']`.
   */
  allowedOrigins?: string[];
  /** How often the page refreshes its numbers, ms. Default 2000. */
  pollIntervalMs?: number;
  /** Failed notifications listed on the main page. Default 50. */
  failedLimit?: number;
  /** Page title. Default `drizzle-pgpubsub`. */
  title?: string;
  /**
   * A pino-compatible logger for internal errors (a failed database query answers 500 "see the
   * server log"). Without one they are written to stderr with `console.error`: the only output of
   * the handler, and one an operator must see.
   */
  logger?: Pick<ListenerLogger, 'error'>;
}

/** A Web-standard request handler. */
export type DashboardHandler = (request: Request) => Promise<Response>;

const MAX_BODY = 16 * 1024;

function invalid(message: string): PgPubSubError {
  return new PgPubSubError('INVALID_OPTIONS', `createDashboard: ${message}`);
}

function normalizeBase(basePath: string | undefined): string {
  const base = (basePath ?? '').replace(/\/+$/, '');
  if (base !== '' && !/^\/[A-Za-z0-9._~\-/]*$/.test(base)) {
    throw invalid(
      `\`basePath\` must start with "/" and hold only URL path characters, got ${JSON.stringify(basePath)}.`,
    );
  }
  return base;
}

/**
 * A dashboard of the notifications in `db` (any Drizzle PostgreSQL database): channels with pending,
 * scheduled, failed and oldest age, throughput, connected listeners, failed notifications with their
 * error and payload, and (with `allowWrites`) retry and purge. Server-rendered HTML with a small script
 * that polls `GET {basePath}/api/status`.
 *
 * Security: read-only unless `allowWrites`; writes need a token (or `externalAuth`), POST, the page's
 * CSRF token and a same-origin request; every page is sent with a strict Content-Security-Policy.
 * Without `token` the handler authenticates nobody: mount it behind your app's auth, or on loopback.
 *
 * @example
 * // node:http
 * import { createServer } from 'node:http';
 * import { createDashboard, toNodeHandler } from 'drizzle-pgpubsub';
 * createServer(toNodeHandler(createDashboard(db))).listen(4000, '127.0.0.1');
 *
 * // Hono
 * app.all('/queue/*', (c) => dashboard(c.req.raw)); // with createDashboard(db, { basePath: '/queue', token })
 */
export function createDashboard(db: AnyPgDb, options: DashboardOptions = {}): DashboardHandler {
  const base = normalizeBase(options.basePath);
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const writes = options.allowWrites === true;
  const { token } = options;
  if (token !== undefined && (typeof token !== 'string' || token.length < 16)) {
    throw invalid('`token` must be a string of at least 16 characters (e.g. `openssl rand -hex 32`).');
  }
  if (writes && token === undefined && options.externalAuth !== true) {
    throw invalid(
      '`allowWrites` needs `token` (or `externalAuth: true` when your app authenticates every request before the dashboard).',
    );
  }
  const pollMs = options.pollIntervalMs ?? 2000;
  const failedLimit = options.failedLimit ?? 50;
  if (!Number.isInteger(failedLimit) || failedLimit < 1)
    throw invalid('`failedLimit` must be a positive integer.');
  if (!Number.isFinite(pollMs) || pollMs < 100) throw invalid('`pollIntervalMs` must be at least 100.');
  const allowedOrigins = options.allowedOrigins ?? [];
  const title = options.title ?? 'drizzle-pgpubsub';
  const secretsReady: Promise<Secrets> = deriveSecrets(token, options.secret ?? randomHex(32));

  return async (request) => {
    const secrets = await secretsReady;
    const nonce = randomHex(16);
    const ctx: PageContext = {
      base,
      nonce,
      csrf: secrets.csrf,
      writes,
      auth: token !== undefined,
      pollMs,
      title,
    };
    const url = new URL(request.url);
    if (url.pathname !== base && !url.pathname.startsWith(`${base}/`)) return text(404, 'Not found');
    const path = url.pathname.slice(base.length) || '/';
    const method = request.method.toUpperCase();
    const isApi = path.startsWith('/api/');

    const html = (status: number, body: string, extra: Record<string, string> = {}) => {
      const headers = baseHeaders('text/html; charset=utf-8');
      headers.set('content-security-policy', contentSecurityPolicy(nonce));
      for (const [k, v] of Object.entries(extra)) headers.append(k, v);
      return new Response(method === 'HEAD' ? null : body, { status, headers });
    };
    const redirect = (to: string, cookie?: string) => {
      const headers = baseHeaders('text/plain; charset=utf-8');
      headers.set('location', to);
      if (cookie !== undefined) headers.append('set-cookie', cookie);
      return new Response(null, { status: 303, headers });
    };
    const fail = (status: number, message: string) =>
      isApi || wantsJson(request)
        ? jsonResponse(status, { error: message })
        : html(status, messagePage(ctx, status === 404 ? 'Not found' : 'Refused', message));

    try {
      // Log-in form: the only page served without authentication.
      if (path === '/login' && token !== undefined) {
        if (method === 'GET' || method === 'HEAD') return html(200, loginPage(ctx, false));
        if (method !== 'POST') return methodNotAllowed('GET, POST');
        const form = await readForm(request);
        if (form === undefined) return fail(413, 'Request body too large.');
        if (
          !isSameOrigin(request, allowedOrigins) ||
          !(await safeEqual(form.get(CSRF_FIELD) ?? '', secrets.csrf))
        ) {
          return fail(403, 'Cross-site or stale form: reload the page and try again.');
        }
        if (!(await safeEqual(form.get('token') ?? '', token))) return html(401, loginPage(ctx, true));
        return redirect(base || '/', sessionCookie(secrets.session ?? '', base || '/', isHttps(request)));
      }
      if (!(await isAuthenticated(request, secrets))) {
        if (isApi || wantsJson(request) || request.headers.has('authorization')) {
          const response = jsonResponse(401, {
            error: 'Authentication required: send Authorization: Bearer <token>.',
          });
          response.headers.set('www-authenticate', 'Bearer realm="drizzle-pgpubsub"');
          return response;
        }
        return html(401, loginPage(ctx, false));
      }

      if (method === 'GET' || method === 'HEAD') return await get(path, url);
      if (method !== 'POST') return methodNotAllowed('GET, HEAD, POST');

      // Writes: POST, enabled, same-origin, with the CSRF token.
      if (path === '/logout') {
        if (!isSameOrigin(request, allowedOrigins)) return fail(403, 'Cross-site request refused.');
        return redirect(`${base}/login`, sessionCookie('', base || '/', isHttps(request)));
      }
      if (!writes)
        return fail(403, 'The dashboard is read-only: writes are disabled (allowWrites / --allow-writes).');
      const form = await readForm(request);
      if (form === undefined) return fail(413, 'Request body too large.');
      const csrf = form.get(CSRF_FIELD) ?? request.headers.get(CSRF_HEADER) ?? '';
      if (!isSameOrigin(request, allowedOrigins)) return fail(403, 'Cross-site request refused.');
      if (!(await safeEqual(csrf, secrets.csrf)))
        return fail(403, 'Missing or stale CSRF token: reload the page and try again.');
      return await post(path, form);
    } catch (error) {
      const message =
        (error as { name?: unknown } | null)?.name === 'PgPubSubError'
          ? (error as Error).message
          : 'Internal error while querying the database (see the server log).';
      if ((error as { name?: unknown } | null)?.name !== 'PgPubSubError') {
        if (options.logger) options.logger.error({ err: error }, `dashboard: ${method} ${path} failed`);
        else console.error(error);
      }
      return fail(500, message);
    }

    async function get(p: string, u: URL): Promise<Response> {
      if (p === '/api/status') {
        return jsonResponse(200, await dashboardStatus(db, { schema, writes, failedLimit }));
      }
      const apiFailed = /^\/api\/failed\/([^/]+)$/.exec(p);
      if (apiFailed) {
        const id = parseId(apiFailed[1]);
        const detail = id === undefined ? undefined : await failedDetail(db, schema, id);
        return detail
          ? jsonResponse(200, detail)
          : jsonResponse(404, { error: 'No failed notification with this id.' });
      }
      if (p === '/') {
        const msg = u.searchParams.get('msg');
        const n = Number(u.searchParams.get('n') ?? 0);
        const flash =
          msg !== null && Object.hasOwn(FLASH, msg)
            ? FLASH[msg]?.(Number.isSafeInteger(n) ? n : 0)
            : undefined;
        return html(200, mainPage(ctx, await dashboardStatus(db, { schema, writes, failedLimit }), flash));
      }
      const page = /^\/failed\/([^/]+)$/.exec(p);
      if (page) {
        const id = parseId(page[1]);
        const detail = id === undefined ? undefined : await failedDetail(db, schema, id);
        return detail
          ? html(200, failedPage(ctx, detail))
          : html(
              404,
              messagePage(
                ctx,
                'Not found',
                'No failed notification with this id (retried, purged or handled since?).',
              ),
            );
      }
      return fail(404, 'Not found.');
    }

    async function post(p: string, form: URLSearchParams): Promise<Response> {
      const done = (msg: string, n: number) =>
        wantsJson(request) ? jsonResponse(200, { [msg]: n }) : redirect(`${base}/?msg=${msg}&n=${n}`);
      const one = /^\/failed\/([^/]+)\/(retry|purge)$/.exec(p);
      if (one) {
        const id = parseId(one[1]);
        if (id === undefined) return fail(404, 'Not found.');
        const n =
          one[2] === 'retry'
            ? await retryFailed(db, { ids: [id] }, { schema })
            : Number(await purgeOne(db, schema, id));
        if (n === 0)
          return wantsJson(request)
            ? jsonResponse(404, { error: 'Not failed.' })
            : redirect(`${base}/?msg=gone`);
        return done(one[2] === 'retry' ? 'retried' : 'purged', n);
      }
      if (p === '/retry' || p === '/purge') {
        const channel = form.get('channel');
        const all = form.get('all') === '1';
        if ((channel === null || channel === '') === !all) return fail(400, 'Pass either channel or all=1.');
        if (p === '/retry') {
          return done(
            'retried',
            await retryFailed(db, all ? { all: true } : { channel: channel as string }, { schema }),
          );
        }
        const n = await purgeFailed(db, {
          schema,
          olderThan: 0,
          ...(all ? {} : { channel: channel as string }),
        });
        return done('purged', n);
      }
      return fail(404, 'Not found.');
    }
  };
}

function wantsJson(request: Request): boolean {
  const accept = request.headers.get('accept') ?? '';
  return accept.includes('application/json') && !accept.includes('text/html');
}

function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: baseHeaders('application/json; charset=utf-8'),
  });
}

function text(status: number, body: string): Response {
  return new Response(body, { status, headers: baseHeaders('text/plain; charset=utf-8') });
}

function methodNotAllowed(allow: string): Response {
  const response = text(405, 'Method not allowed');
  response.headers.set('allow', allow);
  return response;
}

/** The urlencoded (or multipart) form of a POST, or undefined when larger than 16 KiB. */
async function readForm(request: Request): Promise<URLSearchParams | undefined> {
  const length = Number(request.headers.get('content-length') ?? 0);
  if (length > MAX_BODY) return undefined;
  const type = request.headers.get('content-type') ?? '';
  if (type.startsWith('multipart/form-data')) {
    const out = new URLSearchParams();
    for (const [k, v] of await request.formData()) if (typeof v === 'string') out.append(k, v);
    return out;
  }
  const body = await request.text();
  if (body.length > MAX_BODY) return undefined;
  return new URLSearchParams(body);
}

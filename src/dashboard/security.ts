/**
 * Authentication, CSRF and response headers of the dashboard. Web Crypto only (no `node:` import), so
 * the handler runs in Node, Bun, Deno and edge runtimes alike.
 */

const encoder = new TextEncoder();

/** Name of the session cookie set by the login form. */
export const SESSION_COOKIE = 'pgpubsub_dashboard';

/** Form field and header that carry the CSRF token of a write. */
export const CSRF_FIELD = '_csrf';
export const CSRF_HEADER = 'x-csrf-token';

function toHex(bytes: ArrayBuffer | Uint8Array): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** `n` random bytes as hex. */
export function randomHex(n: number): string {
  return toHex(crypto.getRandomValues(new Uint8Array(n)));
}

async function hmacHex(key: string, message: string): Promise<string> {
  const k = await crypto.subtle.importKey(
    'raw',
    encoder.encode(key),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  return toHex(await crypto.subtle.sign('HMAC', k, encoder.encode(message)));
}

/**
 * Compares two strings in time independent of where they differ: both are HMACed with a random key
 * first, so the comparison runs over equal-length digests.
 */
export async function safeEqual(a: string, b: string): Promise<boolean> {
  const key = randomHex(16);
  const [x, y] = await Promise.all([hmacHex(key, a), hmacHex(key, b)]);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x.charCodeAt(i) ^ y.charCodeAt(i);
  return diff === 0;
}

/** The secrets of one dashboard: derived once from its token and its (per-process) secret. */
export interface Secrets {
  /** Configured token, or undefined when none is required. */
  token: string | undefined;
  /** Value the session cookie holds: HMAC(secret, token). Never the token itself. */
  session: string | undefined;
  /** CSRF token embedded in pages, required on every POST. */
  csrf: string;
}

/** Derives the session value and the CSRF token from the token and the secret. */
export async function deriveSecrets(token: string | undefined, secret: string): Promise<Secrets> {
  return {
    token,
    session: token === undefined ? undefined : await hmacHex(secret, `session:${token}`),
    csrf: await hmacHex(secret, 'csrf'),
  };
}

/** Parses the `Cookie` header. */
export function readCookies(request: Request): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (request.headers.get('cookie') ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

/**
 * Whether the request is authenticated: no token configured, `Authorization: Bearer <token>`, or the
 * session cookie the login form set.
 */
export async function isAuthenticated(request: Request, secrets: Secrets): Promise<boolean> {
  if (secrets.token === undefined) return true;
  const auth = request.headers.get('authorization');
  if (auth !== null) {
    const match = /^Bearer\s+(.+)$/i.exec(auth.trim());
    return match?.[1] !== undefined && (await safeEqual(match[1], secrets.token));
  }
  const cookie = readCookies(request).get(SESSION_COOKIE);
  return cookie !== undefined && secrets.session !== undefined && (await safeEqual(cookie, secrets.session));
}

/**
 * Whether a state-changing request comes from the dashboard's own pages: `Sec-Fetch-Site` must be
 * `same-origin` when the browser sends it; otherwise `Origin`, when present, must be the request's
 * own origin or one of `allowedOrigins` (behind a proxy that rewrites `Host`). Requests with neither
 * header come from non-browser clients, which CSRF does not concern (they still need the token).
 */
export function isSameOrigin(request: Request, allowedOrigins: readonly string[]): boolean {
  const site = request.headers.get('sec-fetch-site');
  if (site !== null) return site === 'same-origin';
  const origin = request.headers.get('origin');
  if (origin === null) return true;
  if (origin === 'null') return false;
  return origin === new URL(request.url).origin || allowedOrigins.includes(origin);
}

/** Whether the request was made over HTTPS (directly, or according to a proxy's `X-Forwarded-Proto`). */
export function isHttps(request: Request): boolean {
  return (
    new URL(request.url).protocol === 'https:' ||
    request.headers.get('x-forwarded-proto')?.split(',')[0]?.trim() === 'https'
  );
}

/** `Set-Cookie` value of the session cookie (`value` empty: clears it). */
export function sessionCookie(value: string, path: string, secure: boolean): string {
  const parts = [
    `${SESSION_COOKIE}=${value}`,
    `Path=${path || '/'}`,
    'HttpOnly',
    'SameSite=Strict',
    value === '' ? 'Max-Age=0' : 'Max-Age=43200',
  ];
  if (secure) parts.push('Secure');
  return parts.join('; ');
}

/** Headers of every response: no caching, no framing, no sniffing, no referrer. */
export function baseHeaders(contentType: string): Headers {
  return new Headers({
    'content-type': contentType,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
  });
}

/**
 * Content-Security-Policy of an HTML page: only the page's own nonce'd script and style run, fetches
 * go to the same origin, forms post to the same origin, no framing.
 */
export function contentSecurityPolicy(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

/**
 * node:http adapter: turns a Web-standard handler into a `(req, res)` listener. Only node:http types
 * are imported; Node 20 has the global `Request` and `Response` this needs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Largest request body the adapter reads (the dashboard's forms are a few hundred bytes). */
const MAX_BODY = 64 * 1024;

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        // Stop keeping the body; drain the rest so the 413 reaches the client.
        req.removeAllListeners('data');
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * Adapts a Web `(Request) => Promise<Response>` handler, such as {@link createDashboard}'s, to
 * `http.createServer`. The request URL is built from the `Host` header (`http:` unless the socket is
 * TLS); bodies over 64 KiB get 413.
 *
 * @example
 * import { createServer } from 'node:http';
 * createServer(toNodeHandler(createDashboard(db))).listen(4000, '127.0.0.1');
 */
export function toNodeHandler(
  handler: (request: Request) => Promise<Response>,
  options: {
    /** A pino-compatible logger for errors of the adapter itself; default `console.error`. */
    logger?: { error(fields: Record<string, unknown>, message: string): void };
  } = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void (async () => {
      try {
        const secure = (req.socket as { encrypted?: boolean }).encrypted === true;
        const url = new URL(
          req.url ?? '/',
          `${secure ? 'https' : 'http'}://${req.headers.host ?? 'localhost'}`,
        );
        const headers = new Headers();
        for (const [name, value] of Object.entries(req.headers)) {
          if (value === undefined) continue;
          for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
        }
        const method = req.method ?? 'GET';
        let body: Buffer | undefined;
        if (method !== 'GET' && method !== 'HEAD') {
          body = await readBody(req);
          if (body === undefined) {
            res
              .writeHead(413, { 'content-type': 'text/plain', connection: 'close' })
              .end('Request body too large');
            return;
          }
        }
        const response = await handler(new Request(url, { method, headers, ...(body ? { body } : {}) }));
        const out: Record<string, string | string[]> = {};
        response.headers.forEach((value, name) => {
          if (name !== 'set-cookie') out[name] = value;
        });
        const cookies = response.headers.getSetCookie();
        if (cookies.length > 0) out['set-cookie'] = cookies;
        res.writeHead(response.status, out);
        res.end(method === 'HEAD' ? undefined : Buffer.from(await response.arrayBuffer()));
      } catch (error) {
        if (options.logger) options.logger.error({ err: error }, 'dashboard: request failed');
        else console.error(error);
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('Internal error');
      }
    })();
  };
}

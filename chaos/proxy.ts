import { createServer, type Server, Socket } from 'node:net';

/** What the proxy has done so far. */
export interface ProxyStats {
  accepted: number;
  /** Connection pairs cut with a TCP reset by {@link ChaosProxy.resetAll}. */
  reset: number;
  /** Connection pairs frozen by {@link ChaosProxy.blackhole}. */
  blackholed: number;
  /** Connections refused because the upstream could not be reached (e.g. PostgreSQL restarting). */
  upstreamFailures: number;
}

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  /** Chunks read while black-holed, in order, per direction. */
  held: { toUpstream: Buffer[]; toClient: Buffer[] };
  /** One side closed while black-holed: close the other at heal time (a partition delivers no FIN). */
  closePending: boolean;
  dead: boolean;
}

/**
 * A loopback TCP proxy between the application and PostgreSQL that can cut connections.
 *
 * - {@link resetAll}: every open connection gets a TCP RST on both sides at once (a middlebox or
 *   failover dropping its connection table, the server crashing).
 * - {@link blackhole}: silently stops moving bytes in both directions, for existing and new
 *   connections (a network partition), then either heals (held bytes flow again, as TCP
 *   retransmission would deliver them) or severs (connections are reset, as keepalive or the
 *   retransmission timeout would eventually do). Note that a userspace proxy keeps ACKing TCP
 *   keepalive probes, so keepalive alone cannot notice the freeze here; `sever` stands in for it.
 */
export class ChaosProxy {
  readonly stats: ProxyStats = { accepted: 0, reset: 0, blackholed: 0, upstreamFailures: 0 };
  private readonly pairs = new Set<Pair>();
  private frozen = false;
  /** Ends the current black hole early (set while one lasts). */
  private endHole: (() => void) | undefined;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly upstreamHost: string,
    private readonly upstreamPort: number,
  ) {}

  /** Starts a proxy on 127.0.0.1 (a free port unless given) forwarding to `upstreamHost:upstreamPort`. */
  static async start(upstreamHost: string, upstreamPort: number, listenPort = 0): Promise<ChaosProxy> {
    const server = createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listenPort, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (typeof address !== 'object' || !address) throw new Error('proxy: no address');
    const proxy = new ChaosProxy(server, address.port, upstreamHost, upstreamPort);
    server.on('connection', (socket) => proxy.accept(socket));
    return proxy;
  }

  /** Number of open connection pairs. */
  get open(): number {
    return this.pairs.size;
  }

  /** True while a black hole is in force. */
  get isFrozen(): boolean {
    return this.frozen;
  }

  private accept(client: Socket): void {
    this.stats.accepted++;
    const pair: Pair = {
      client,
      upstream: undefined,
      held: { toUpstream: [], toClient: [] },
      closePending: false,
      dead: false,
    };
    this.pairs.add(pair);
    client.setNoDelay(true);
    client.on('error', () => {});
    client.on('data', (chunk) => this.forward(pair, chunk, 'toUpstream'));
    client.on('close', () => this.sideClosed(pair));
    if (this.frozen) {
      // A partition: the connection attempt goes nowhere until the black hole ends.
      client.pause();
      return;
    }
    this.connectUpstream(pair);
  }

  private connectUpstream(pair: Pair): void {
    if (pair.dead) return;
    const upstream = new Socket();
    pair.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.on('error', () => {});
    upstream.on('data', (chunk) => this.forward(pair, chunk, 'toClient'));
    upstream.on('close', () => this.sideClosed(pair));
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      if (this.frozen) return;
      this.flush(pair);
    });
    upstream.once('error', () => {
      if (!connected) this.stats.upstreamFailures++;
    });
    upstream.connect(this.upstreamPort, this.upstreamHost);
  }

  private forward(pair: Pair, chunk: Buffer, direction: 'toUpstream' | 'toClient'): void {
    const target = direction === 'toUpstream' ? pair.upstream : pair.client;
    if (this.frozen || !target || target.connecting || pair.held[direction].length > 0) {
      pair.held[direction].push(chunk);
      return;
    }
    this.write(pair, target, chunk, direction);
  }

  private write(pair: Pair, target: Socket, chunk: Buffer, direction: 'toUpstream' | 'toClient'): void {
    if (target.destroyed) return;
    if (!target.write(chunk)) {
      const source = direction === 'toUpstream' ? pair.client : pair.upstream;
      source?.pause();
      target.once('drain', () => {
        if (!this.frozen) source?.resume();
      });
    }
  }

  private flush(pair: Pair): void {
    if (pair.dead) return;
    const up = pair.upstream;
    if (up && !up.connecting) {
      for (const chunk of pair.held.toUpstream.splice(0)) this.write(pair, up, chunk, 'toUpstream');
    }
    for (const chunk of pair.held.toClient.splice(0)) this.write(pair, pair.client, chunk, 'toClient');
  }

  private sideClosed(pair: Pair): void {
    if (pair.dead) return;
    if (this.frozen) {
      pair.closePending = true;
      return;
    }
    this.kill(pair, false);
  }

  private kill(pair: Pair, reset: boolean): void {
    if (pair.dead) return;
    pair.dead = true;
    this.pairs.delete(pair);
    for (const socket of [pair.client, pair.upstream]) {
      if (!socket || socket.destroyed) continue;
      if (reset && !socket.connecting) socket.resetAndDestroy();
      else {
        // Deliver what is already in flight (e.g. an error message), then close.
        socket.end();
        setTimeout(() => socket.destroy(), 200).unref();
      }
    }
  }

  /** Cuts every open connection with a TCP reset. Returns how many pairs were cut. */
  resetAll(): number {
    const victims = [...this.pairs];
    for (const pair of victims) this.kill(pair, true);
    this.stats.reset += victims.length;
    return victims.length;
  }

  /**
   * Freezes all traffic, existing and new connections alike, for `ms`; then `heal` (bytes flow again)
   * or `sever` (every frozen connection is reset). Resolves when the black hole has ended (at once
   * when {@link close} is called during it).
   */
  async blackhole(ms: number, after: 'heal' | 'sever'): Promise<number> {
    if (this.frozen) return 0;
    this.frozen = true;
    const frozen = [...this.pairs];
    this.stats.blackholed += frozen.length;
    for (const pair of frozen) {
      pair.client.pause();
      pair.upstream?.pause();
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.endHole = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.endHole = undefined;
    this.frozen = false;
    for (const pair of [...this.pairs]) {
      if (after === 'sever' || pair.closePending) {
        this.kill(pair, after === 'sever');
        continue;
      }
      if (!pair.upstream) this.connectUpstream(pair);
      pair.client.resume();
      pair.upstream?.resume();
      this.flush(pair);
    }
    return frozen.length;
  }

  /** Stops accepting and closes every connection (a black hole still lasting ends now). */
  async close(): Promise<void> {
    for (const pair of [...this.pairs]) this.kill(pair, true);
    this.endHole?.();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

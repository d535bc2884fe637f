import pg from 'pg';

/**
 * Counts the NOTIFYs that writers send on some channels, on a LISTEN connection of its own (straight
 * to the server, not through the fault proxy). It reconnects after PostgreSQL restarts; NOTIFYs sent
 * while it is disconnected are not counted, so the figure is a lower bound during a restart.
 */
export class NotifyCounter {
  count = 0;
  private client: pg.Client | undefined;
  private closed = false;
  private sentinels = 0;

  private constructor(
    private readonly url: string,
    private readonly channels: readonly string[],
  ) {}

  static async start(url: string, channels: readonly string[]): Promise<NotifyCounter> {
    const counter = new NotifyCounter(url, channels);
    await counter.connect();
    return counter;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, application_name: 'chaos-notify-counter' });
    client.on('notification', (n) => {
      if (n.payload === 'chaos-sentinel') this.sentinels++;
      else this.count++;
    });
    client.on('error', () => this.reconnect(client));
    client.on('end', () => this.reconnect(client));
    await client.connect();
    for (const channel of this.channels) await client.query(`LISTEN "${channel.replaceAll('"', '""')}"`);
    this.client = client;
  }

  private reconnect(client: pg.Client): void {
    if (this.closed || this.client !== client) return;
    this.client = undefined;
    const retry = () => {
      if (this.closed) return;
      this.connect().catch(() => setTimeout(retry, 200));
    };
    setTimeout(retry, 200);
  }

  /**
   * Waits until every NOTIFY committed before this call has been counted: NOTIFYs arrive in commit
   * order, so a sentinel sent now closes the count.
   */
  async settle(admin: (sql: string, params?: unknown[]) => Promise<unknown>): Promise<void> {
    const seen = this.sentinels;
    const channel = this.channels[0];
    if (!channel) return;
    await admin('SELECT pg_notify($1, $2)', [channel, 'chaos-sentinel']);
    const deadline = Date.now() + 30_000;
    while (this.sentinels === seen) {
      if (Date.now() > deadline) throw new Error('the NOTIFY counter did not receive its sentinel in 30 s');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client?.end().catch(() => {});
  }
}

/** NOTIFYs per 1,000 writes, rounded to one decimal. */
export function per1000(notifies: number, writes: number): number {
  return writes === 0 ? 0 : Math.round((notifies * 10_000) / writes) / 10;
}

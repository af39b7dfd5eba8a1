// feed.ts - the change feed as an event stream (GET /v1/changes?feed=sse).
//
// EventSource cannot send an Authorization header, so the stream is read
// with fetch() and parsed here: the token stays in a header, never in a
// URL.  The stream ends at its timeout (300 s) or when the connection
// drops; it is opened again from the last sequence seen, so no change is
// missed in between.

import { Api } from "./api";

export type Change = {
  seq: number;
  collection: string;
  id: string;
  deleted: boolean;
  origin: string | null;
  hlc: number;
};

export type FeedState = "connecting" | "live" | "down";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Feed {
  private since = 0;
  private stopped = false;
  private ctl: AbortController | null = null;

  constructor(
    private api: Api,
    private onChange: (c: Change) => void,
    private onState: (s: FeedState, why?: string) => void,
  ) {}

  /* Start from the changes after now (since=now): the page loads what is
   * there itself. */
  async start(): Promise<void> {
    const j = await this.api.get<{ last_seq: number }>("/v1/changes?since=now");
    this.since = j.last_seq;
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.ctl?.abort();
  }

  private async run(): Promise<void> {
    let backoff = 500;
    while (!this.stopped) {
      this.onState("connecting");
      try {
        this.ctl = new AbortController();
        const r = await fetch(`/v1/changes?feed=sse&since=${this.since}&timeout=300`, {
          headers: this.api.headers(),
          signal: this.ctl.signal,
          cache: "no-store",
        });
        if (r.status === 401) {
          this.onState("down", "the token was refused");
          return;
        }
        if (!r.ok || r.body === null) throw new Error(`HTTP ${r.status}`);
        this.onState("live");
        backoff = 500;
        await this.read(r.body);
      } catch (e) {
        if (this.stopped) return;
        this.onState("down", String(e));
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 10000);
      }
    }
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const rd = body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await rd.read();
      if (done) return;
      buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        this.event(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    }
  }

  private event(ev: string): void {
    let data = "";
    for (const line of ev.split("\n"))
      if (line.startsWith("data:")) data += line.slice(line.startsWith("data: ") ? 6 : 5);
    if (data === "") return; /* a keep-alive comment */
    const c = JSON.parse(data) as Change;
    if (c.seq > this.since) this.since = c.seq;
    this.onChange(c);
  }
}

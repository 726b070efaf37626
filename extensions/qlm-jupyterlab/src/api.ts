/** Talking to the server extension through JupyterLab's ServerConnection (base URL, token, XSRF). */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IQLMErrorRecord, IQLMEvent } from './types';

/** A failed call: the server's QLMError record when it sent one. */
export class QLMApiError extends Error {
  constructor(
    readonly status: number,
    readonly record: IQLMErrorRecord | null,
    fallback: string
  ) {
    super(record ? `${record.message}${record.hint ? ` (${record.hint})` : ''}` : fallback);
  }
}

function apiUrl(settings: ServerConnection.ISettings, path: string): string {
  return URLExt.join(settings.baseUrl, 'qlm', 'api', path);
}

/** GET/POST `<base_url>/qlm/api/<path>` and decode JSON; errors become QLMApiError. */
export async function requestAPI<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(apiUrl(settings, path), init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new QLMApiError(response.status, body?.error ?? null, body?.message ?? response.statusText);
  }
  return body as T;
}

/** GET a text resource (the HTML run report). */
export async function requestText(path: string): Promise<string> {
  const settings = ServerConnection.makeSettings();
  const response = await ServerConnection.makeRequest(apiUrl(settings, path), {}, settings);
  const text = await response.text();
  if (!response.ok) {
    let record: IQLMErrorRecord | null = null;
    try {
      record = JSON.parse(text).error ?? null;
    } catch {
      record = null;
    }
    throw new QLMApiError(response.status, record, response.statusText);
  }
  return text;
}

/** A batch of new events as sent by the stream. */
export interface IEventBatch {
  events: IQLMEvent[];
  last_id: number;
}

/**
 * Follow `<base_url>/qlm/api/events/stream` (Server-Sent Events read through fetch, so the request
 * carries JupyterLab's auth headers); reconnects after a drop, resuming after the last id seen.
 */
export class EventStream {
  private _abort: AbortController | null = null;
  private _lastId = -1;
  private _stopped = false;

  constructor(
    private readonly _onBatch: (batch: IEventBatch) => void,
    private readonly _onState: (connected: boolean) => void
  ) {}

  get lastId(): number {
    return this._lastId;
  }

  /** Start at `after` (-1: only new events). */
  start(after = -1): void {
    this._lastId = after;
    this._stopped = false;
    void this._loop();
  }

  stop(): void {
    this._stopped = true;
    this._abort?.abort();
  }

  private async _loop(): Promise<void> {
    while (!this._stopped) {
      try {
        await this._follow();
      } catch (error) {
        if (this._stopped) {
          return;
        }
        console.debug('qlm: event stream dropped, reconnecting', error);
      }
      this._onState(false);
      await new Promise(resolve => setTimeout(resolve, 1000));
    }
  }

  private async _follow(): Promise<void> {
    const settings = ServerConnection.makeSettings();
    this._abort = new AbortController();
    const url = apiUrl(settings, 'events/stream') + `?after=${this._lastId}`;
    const response = await ServerConnection.makeRequest(
      url,
      { signal: this._abort.signal, headers: { Accept: 'text/event-stream' } },
      settings
    );
    if (!response.ok || !response.body) {
      throw new Error(`event stream answered ${response.status}`);
    }
    this._onState(true);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        return;
      }
      buffer += decoder.decode(value, { stream: true });
      let cut = buffer.indexOf('\n\n');
      while (cut >= 0) {
        this._message(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        cut = buffer.indexOf('\n\n');
      }
    }
  }

  private _message(block: string): void {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) {
        event = line.slice(6).trim();
      } else if (line.startsWith('data:')) {
        data.push(line.slice(5).trimStart());
      }
    }
    if (!data.length) {
      return;
    }
    const parsed = JSON.parse(data.join('\n'));
    if (event === 'hello') {
      this._lastId = parsed.last_id;
      return;
    }
    const batch = parsed as IEventBatch;
    this._lastId = batch.last_id;
    this._onBatch(batch);
  }
}

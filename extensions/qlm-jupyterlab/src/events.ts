/** The live event log of every kernel and MCP server writing to the workspace, with a topic filter. */

import { clock, compact, globRegExp, h, section } from './dom';
import { IQLMEvent } from './types';

const KEEP = 500;
const SHOWN = 200;

export class EventsSection {
  readonly root: HTMLElement;
  private readonly _list: HTMLElement;
  private readonly _count: HTMLElement;
  private readonly _filter: HTMLInputElement;
  private readonly _state: HTMLElement;
  private _events: IQLMEvent[] = [];
  private _patterns: RegExp[] = [];

  constructor() {
    const parts = section('Live events', 'events');
    this.root = parts.root;
    this._count = parts.count;
    this._state = h('span', { class: 'qlm-stream-state', title: 'event stream' }, 'connecting');
    parts.tools.append(this._state);
    this._filter = h('input', {
      class: 'jp-mod-styled qlm-filter',
      type: 'search',
      placeholder: 'topic filter: job.*, heal.*, mcp.*',
      'aria-label': 'Filter events by topic'
    });
    this._filter.addEventListener('input', () => {
      this._patterns = this._filter.value
        .split(/[\s,]+/)
        .filter(Boolean)
        .map(globRegExp);
      this.render();
    });
    const clear = h('button', { class: 'jp-Button jp-mod-styled jp-mod-reject qlm-small-button' }, 'Clear');
    clear.addEventListener('click', () => {
      this._events = [];
      this.render();
    });
    this._list = h('ul', { class: 'qlm-events' });
    parts.body.append(h('div', { class: 'qlm-row' }, this._filter, clear), this._list);
    this.render();
  }

  setConnected(connected: boolean): void {
    this._state.textContent = connected ? 'live' : 'reconnecting';
    this._state.classList.toggle('qlm-live', connected);
  }

  add(events: IQLMEvent[]): void {
    this._events = this._events.concat(events).slice(-KEEP);
    this.render();
  }

  private _visible(): IQLMEvent[] {
    const patterns = this._patterns;
    const shown = patterns.length
      ? this._events.filter(e => patterns.some(p => p.test(e.topic)))
      : this._events;
    return shown.slice(-SHOWN).reverse();
  }

  render(): void {
    const shown = this._visible();
    this._count.textContent = this._events.length ? String(this._events.length) : '';
    if (!shown.length) {
      this._list.replaceChildren(
        h('li', { class: 'qlm-empty' }, this._events.length ? 'No event matches the filter.' : 'Waiting for events…')
      );
      return;
    }
    this._list.replaceChildren(
      ...shown.map(event =>
        h(
          'li',
          { class: `qlm-event qlm-topic-${event.topic.split('.')[0]}`, 'data-topic': event.topic, 'data-event-id': event.id },
          h('span', { class: 'qlm-dim' }, clock(event.time)),
          h('span', { class: 'qlm-topic' }, event.topic),
          h('span', { class: 'qlm-payload', title: JSON.stringify(event.payload, null, 2) }, compact(event.payload, 160))
        )
      )
    );
  }
}

/** The QLM sidebar: jobs, recent runs, live events, heal sessions and MCP status, kept live. */

import { refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { EventStream, IEventBatch, requestAPI } from './api';
import { h } from './dom';
import { EventsSection } from './events';
import { HealSection } from './heal';
import { qlmIcon } from './icons';
import { JobsSection } from './jobs';
import { MCPSection } from './mcp';
import { RunsSection } from './runs';
import { IHealSession, IRun, IStatus } from './types';

type Part = 'jobs' | 'runs' | 'heal' | 'mcp';

/** Which parts an event topic makes stale. */
function partsFor(topic: string): Part[] {
  if (topic.startsWith('job.')) {
    return ['jobs'];
  }
  if (topic.startsWith('heal.')) {
    return ['heal'];
  }
  if (topic.startsWith('mcp.server.') || topic.startsWith('mcp.client.')) {
    return ['mcp'];
  }
  if (topic === 'store.run.recorded' || topic.startsWith('engine.backtest.')) {
    return ['runs'];
  }
  return [];
}

export interface IPanelOptions {
  openRun: (run: IRun) => void;
  openHeal: (session: IHealSession) => void;
}

export class QLMPanel extends Widget {
  private readonly _jobs: JobsSection;
  private readonly _runs: RunsSection;
  private readonly _events = new EventsSection();
  private readonly _heal: HealSection;
  private readonly _mcp = new MCPSection();
  private readonly _stream: EventStream;
  private readonly _home = h('div', { class: 'qlm-home qlm-dim' });
  private readonly _timers = new Map<Part, number>();
  private _poll = 0;

  constructor(options: IPanelOptions) {
    super();
    this.id = 'qlm-sidebar';
    this.addClass('qlm-panel');
    this.title.icon = qlmIcon;
    this.title.caption = 'QLM: jobs, runs, events, heal sessions, MCP';
    this._jobs = new JobsSection(() => this.schedule('jobs'));
    this._runs = new RunsSection(options.openRun);
    this._heal = new HealSection(options.openHeal);
    const refresh = h('button', { class: 'jp-Button jp-mod-minimal qlm-refresh', title: 'Refresh everything' });
    refresh.append(refreshIcon.element({ tag: 'span' }));
    refresh.addEventListener('click', () => this.refreshAll());
    this.node.append(
      h('header', { class: 'qlm-header' }, h('span', { class: 'qlm-title' }, 'QLM'), this._home, refresh),
      this._jobs.root,
      this._runs.root,
      this._events.root,
      this._heal.root,
      this._mcp.root
    );
    this._stream = new EventStream(
      batch => this._onBatch(batch),
      connected => this._events.setConnected(connected)
    );
    void this._start();
  }

  private async _start(): Promise<void> {
    try {
      const status = await requestAPI<IStatus>('status');
      const home = status.qlm_home;
      this._home.textContent = home.length > 30 ? '…' + home.slice(-29) : home;
      this._home.title = `QLM_HOME ${status.qlm_home}${status.db_exists ? '' : ' (no database yet)'}`;
    } catch (error) {
      this._home.textContent = `server extension unavailable: ${(error as Error).message}`;
    }
    // the last 50 events give the log some history; the stream then continues after them
    let after = -1;
    try {
      const recent = await requestAPI<{ events: []; last_id: number }>('events?after=0&limit=1');
      after = Math.max(0, recent.last_id - 50);
    } catch {
      after = -1;
    }
    this._stream.start(after);
    this.refreshAll();
    this._schedulePoll();
  }

  /** Reload every section now. */
  refreshAll(): void {
    for (const part of ['jobs', 'runs', 'heal', 'mcp'] as Part[]) {
      this.schedule(part, 0);
    }
  }

  /** Reload one section soon (bursts of events coalesce into one request). */
  schedule(part: Part, delay = 150): void {
    if (this._timers.has(part)) {
      return;
    }
    const timer = window.setTimeout(() => {
      this._timers.delete(part);
      const section = { jobs: this._jobs, runs: this._runs, heal: this._heal, mcp: this._mcp }[part];
      section.refresh().catch(error => console.warn(`qlm: refreshing ${part} failed`, error));
    }, delay);
    this._timers.set(part, timer);
  }

  /**
   * Jobs are also re-read on a timer (1 s while one runs, 4 s otherwise): a process that writes
   * job rows without recording events (e.g. `qlm optimize`) still shows up and progresses.
   */
  private _schedulePoll(): void {
    this._poll = window.setTimeout(() => {
      if (this.isVisible) {
        this.schedule('jobs', 0);
      }
      this._schedulePoll();
    }, this._jobs.active ? 1000 : 4000);
  }

  private _onBatch(batch: IEventBatch): void {
    this._events.add(batch.events);
    const stale = new Set<Part>();
    for (const event of batch.events) {
      if (event.topic === 'job.progress' && this._jobs.apply(event)) {
        continue;
      }
      partsFor(event.topic).forEach(part => stale.add(part));
    }
    stale.forEach(part => this.schedule(part));
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._stream.stop();
    window.clearTimeout(this._poll);
    this._timers.forEach(timer => window.clearTimeout(timer));
    super.dispose();
  }
}

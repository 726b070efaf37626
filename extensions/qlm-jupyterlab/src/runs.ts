/** Recent backtest runs with key stats; a click opens the run's report. */

import { requestAPI } from './api';
import { compact, h, num, pct, section, stamp } from './dom';
import { IRun } from './types';

export class RunsSection {
  readonly root: HTMLElement;
  private readonly _body: HTMLElement;
  private readonly _count: HTMLElement;
  private _runs: IRun[] = [];

  constructor(private readonly _open: (run: IRun) => void) {
    const parts = section('Recent runs', 'runs');
    this.root = parts.root;
    this._body = parts.body;
    this._count = parts.count;
    this.render();
  }

  async refresh(): Promise<void> {
    const reply = await requestAPI<{ runs: IRun[] }>('runs?limit=15');
    this._runs = reply.runs;
    this.render();
  }

  render(): void {
    this._count.textContent = this._runs.length ? String(this._runs.length) : '';
    if (!this._runs.length) {
      this._body.replaceChildren(h('div', { class: 'qlm-empty' }, 'No runs recorded yet.'));
      return;
    }
    const head = h(
      'tr',
      {},
      ...['#', 'strategy', 'sharpe', 'return'].map(t => h('th', {}, t))
    );
    const rows = this._runs.map(run => {
      const row = h(
        'tr',
        { class: `qlm-run qlm-clickable qlm-run-${run.status}`, 'data-run-id': run.id },
        h('td', {}, String(run.id)),
        h('td', { class: 'qlm-strong' }, run.strategy, run.has_report ? h('span', { class: 'qlm-tag' }, 'html') : null),
        h('td', {}, run.status === 'ok' ? num(run.stats.sharpe) : 'error'),
        h('td', {}, pct(run.stats.total_return)),
      );
      row.title =
        `Run ${run.id} · ${stamp(run.created_at)} · ${run.source ?? ''}\n` +
        `max drawdown ${pct(run.stats.max_drawdown)} · ${run.stats.n_trades ?? '–'} trades · params ${compact(run.params, 80)}\n` +
        'Click to open the report';
      row.addEventListener('click', () => this._open(run));
      return row;
    });
    this._body.replaceChildren(h('table', { class: 'qlm-table qlm-runs-table' }, h('thead', {}, head), h('tbody', {}, ...rows)));
  }
}

/** A run's report in a main-area tab: its saved HTML report, else its stored record. */

import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { requestAPI, requestText } from './api';
import { compact, h, num, stamp } from './dom';
import { qlmIcon } from './icons';
import { IRun } from './types';

function table(rows: [string, string][]): HTMLElement {
  return h(
    'table',
    { class: 'qlm-table qlm-kv' },
    h('tbody', {}, ...rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v))))
  );
}

function cell(value: unknown): string {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : num(value, 4);
  }
  return typeof value === 'string' ? value : compact(value, 200);
}

function recordView(run: IRun): HTMLElement {
  const stats = Object.entries(run.stats ?? {}).map(([k, v]) => [k, cell(v)] as [string, string]);
  const params = Object.entries(run.params ?? {}).map(([k, v]) => [k, cell(v)] as [string, string]);
  const settings = Object.entries(run.settings ?? {}).map(([k, v]) => [k, cell(v)] as [string, string]);
  return h(
    'div',
    { class: 'qlm-report' },
    h('h2', {}, `Run ${run.id}: ${run.strategy}`),
    h(
      'p',
      { class: 'qlm-dim' },
      `${run.status} · ${run.source ?? ''} · ${stamp(run.created_at)} · ${num(run.duration_s, 3)} s · version ${run.strategy_version_id ?? '–'}`
    ),
    run.error ? h('pre', { class: 'qlm-error' }, `${run.error.code}: ${run.error.message}\n${run.error.hint ?? ''}`) : null,
    h('h3', {}, 'Parameters'),
    params.length ? table(params) : h('p', { class: 'qlm-dim' }, 'defaults'),
    h('h3', {}, 'Statistics'),
    stats.length ? table(stats) : h('p', { class: 'qlm-dim' }, 'none'),
    h('h3', {}, 'Settings'),
    table(settings)
  );
}

/** Open run `id` (the HTML report sandboxed in an iframe when one was saved). */
export async function openRun(runId: number): Promise<MainAreaWidget> {
  const { run } = await requestAPI<{ run: IRun }>(`runs/${runId}`);
  const content = new Widget();
  content.addClass('qlm-doc');
  if (run.has_report) {
    const html = await requestText(`runs/${runId}/report`);
    const frame = h('iframe', { class: 'qlm-report-frame', sandbox: 'allow-scripts', title: `Run ${runId} report` });
    frame.srcdoc = html;
    content.addClass('qlm-doc-frame');
    content.node.append(frame);
  } else {
    content.node.append(recordView(run));
  }
  const widget = new MainAreaWidget({ content });
  widget.id = `qlm-run-${runId}`;
  widget.title.label = `Run ${runId} · ${run.strategy}`;
  widget.title.icon = qlmIcon;
  widget.title.closable = true;
  return widget;
}

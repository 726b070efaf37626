/** Self-healing sessions: a list in the sidebar, a timeline with diffs in the main area. */

import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { requestAPI } from './api';
import { compact, h, num, section, stamp } from './dom';
import { healIcon } from './icons';
import { IHealSession, IHealStep, JSONObject } from './types';

export class HealSection {
  readonly root: HTMLElement;
  private readonly _body: HTMLElement;
  private readonly _count: HTMLElement;
  private _sessions: IHealSession[] = [];

  constructor(private readonly _open: (session: IHealSession) => void) {
    const parts = section('Heal sessions', 'heal');
    this.root = parts.root;
    this._body = parts.body;
    this._count = parts.count;
    this.render();
  }

  async refresh(): Promise<void> {
    const reply = await requestAPI<{ sessions: IHealSession[] }>('heal?limit=10');
    this._sessions = reply.sessions;
    this.render();
  }

  render(): void {
    this._count.textContent = this._sessions.length ? String(this._sessions.length) : '';
    if (!this._sessions.length) {
      this._body.replaceChildren(h('div', { class: 'qlm-empty' }, 'No heal sessions yet (qlm.heal or the MCP heal_strategy tool).'));
      return;
    }
    this._body.replaceChildren(
      h(
        'ul',
        { class: 'qlm-list' },
        ...this._sessions.map(s => {
          const row = h(
            'li',
            { class: 'qlm-heal qlm-clickable', 'data-session-id': s.id, title: 'Open the timeline' },
            h(
              'div',
              { class: 'qlm-row' },
              h('span', { class: 'qlm-strong' }, s.strategy),
              h('span', { class: `qlm-badge qlm-heal-${s.status}` }, s.status),
              h('span', { class: 'qlm-dim' }, `${s.attempts}/${s.max_attempts} attempts · ${stamp(s.created_at)}`)
            )
          );
          row.addEventListener('click', () => this._open(s));
          return row;
        })
      )
    );
  }
}

/** A unified diff with added/removed lines coloured. */
export function diffView(diff: string): HTMLElement {
  return h(
    'pre',
    { class: 'qlm-diff' },
    ...diff.split('\n').map(line => {
      const kind = line.startsWith('+++') || line.startsWith('---') ? 'file' : line.startsWith('@@') ? 'hunk' : line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : 'ctx';
      return h('span', { class: `qlm-diff-${kind}` }, line + '\n');
    })
  );
}

function stepDetail(step: IHealStep): HTMLElement | null {
  const data = (step.data ?? {}) as JSONObject;
  if (typeof data.diff === 'string' && data.diff) {
    return diffView(data.diff);
  }
  const text = data.text ?? data.reason ?? data.prompt ?? data.message ?? data.hint;
  if (typeof text === 'string' && text) {
    return h('pre', { class: 'qlm-step-text' }, text.length > 4000 ? text.slice(0, 4000) + '…' : text);
  }
  const error = (data.error ?? data.trace) as JSONObject | undefined;
  if (error && typeof error === 'object') {
    return h('pre', { class: 'qlm-step-text qlm-error' }, `${error.code ?? ''} ${error.message ?? compact(error, 400)}`);
  }
  return Object.keys(data).length ? h('pre', { class: 'qlm-step-text' }, compact(data, 600)) : null;
}

/** The timeline of one heal session (steps in order, patches as diffs) in a main-area tab. */
export async function openHealSession(sessionId: string): Promise<MainAreaWidget> {
  const reply = await requestAPI<{ session: IHealSession }>(`heal/${encodeURIComponent(sessionId)}`);
  const s = reply.session;
  const content = new Widget();
  content.addClass('qlm-doc');
  const steps = s.steps ?? [];
  content.node.append(
    h('h2', {}, `Heal ${s.strategy} — ${s.status}`),
    h(
      'p',
      { class: 'qlm-dim' },
      `session ${s.id} · ${s.attempts}/${s.max_attempts} attempts · model ${s.model ?? 'none'} · versions ${
        s.original_version_id ?? '–'
      } → ${s.final_version_id ?? '–'} · ${stamp(s.created_at)}`
    ),
    h(
      'ol',
      { class: 'qlm-timeline' },
      ...steps.map(step =>
        h(
          'li',
          { class: `qlm-step qlm-step-${step.kind} ${step.ok === false ? 'qlm-step-failed' : ''}`, 'data-kind': step.kind },
          h(
            'div',
            { class: 'qlm-row' },
            h('span', { class: 'qlm-strong' }, `${step.index}. ${step.kind}`),
            h('span', { class: 'qlm-dim' }, `attempt ${step.attempt} · ${num(step.duration_s, 3)} s`),
            step.ok === null ? null : h('span', { class: `qlm-badge ${step.ok ? 'qlm-status-done' : 'qlm-status-failed'}` }, step.ok ? 'ok' : 'failed')
          ),
          stepDetail(step)
        )
      )
    )
  );
  const widget = new MainAreaWidget({ content });
  widget.id = `qlm-heal-${s.id}`;
  widget.title.label = `Heal ${s.strategy}`;
  widget.title.icon = healIcon;
  widget.title.closable = true;
  return widget;
}

/**
 * Running and recent jobs with progress bars and a Cancel action. Statuses: pending, running (shown
 * "stale" when its owner went silent), done, failed, cancelled, abandoned (its process died; resumable).
 */

import { showErrorMessage } from '@jupyterlab/apputils';

import { requestAPI } from './api';
import { compact, h, num, section, stamp } from './dom';
import { IJob, IQLMEvent } from './types';

const ACTIVE = new Set(['pending', 'running']);

export class JobsSection {
  readonly root: HTMLElement;
  private readonly _body: HTMLElement;
  private readonly _count: HTMLElement;
  private _jobs: IJob[] = [];

  constructor(private readonly _changed: () => void) {
    const parts = section('Jobs', 'jobs');
    this.root = parts.root;
    this._body = parts.body;
    this._count = parts.count;
    this.render();
  }

  /** True while any job is pending or running (the panel then refreshes jobs more often). */
  get active(): boolean {
    return this._jobs.some(job => ACTIVE.has(job.status));
  }

  async refresh(): Promise<void> {
    const reply = await requestAPI<{ jobs: IJob[] }>('jobs?limit=20');
    this._jobs = reply.jobs;
    this.render();
  }

  /** Apply a job.progress event at once (the next refresh brings the full row). */
  apply(event: IQLMEvent): boolean {
    const payload = event.payload as { job_id?: string; done?: number; total?: number };
    const job = this._jobs.find(j => j.id === payload?.job_id);
    if (!job) {
      return false;
    }
    if (typeof payload.done === 'number') {
      job.done = Math.max(job.done, payload.done);
    }
    if (typeof payload.total === 'number' && payload.total > 0) {
      job.total = payload.total;
      job.progress = Math.min(1, job.done / payload.total);
    }
    if (event.topic === 'job.progress' && job.status === 'pending') {
      job.status = 'running';
    }
    this.render();
    return true;
  }

  render(): void {
    this._count.textContent = String(this._jobs.filter(j => ACTIVE.has(j.status)).length || '');
    this._body.replaceChildren(
      this._jobs.length
        ? h('ul', { class: 'qlm-list' }, ...this._jobs.map(job => this._row(job)))
        : h('div', { class: 'qlm-empty' }, 'No jobs yet. Start one with qlm.optimize(...) or `qlm optimize`.')
    );
  }

  private _row(job: IJob): HTMLElement {
    const percent = Math.round(job.progress * 100);
    const total = job.total ?? '?';
    const best = job.best && typeof job.best.value === 'number' ? job.best.value : null;
    const status = job.stale ? 'stale' : job.status;
    const bar = h(
      'div',
      {
        class: 'qlm-progress',
        role: 'progressbar',
        'aria-valuemin': 0,
        'aria-valuemax': 100,
        'aria-valuenow': percent
      },
      h('div', { class: `qlm-progress-fill qlm-status-${status}`, style: `width: ${percent}%` })
    );
    const cancel =
      ACTIVE.has(job.status) && !job.cancel_requested
        ? h('button', { class: 'jp-Button jp-mod-styled jp-mod-warn qlm-cancel', title: 'Ask the job to stop' }, 'Cancel')
        : null;
    cancel?.addEventListener('click', () => void this._cancel(job, cancel));
    return h(
      'li',
      { class: 'qlm-job', 'data-job-id': job.id, 'data-status': job.status },
      h(
        'div',
        { class: 'qlm-row' },
        h('span', { class: 'qlm-strong' }, job.strategy ?? job.kind ?? 'job'),
        h('span', { class: 'qlm-dim' }, `${job.method ?? job.kind ?? ''} · ${job.id}`),
        h('span', { class: `qlm-badge qlm-status-${status}` }, job.cancel_requested && ACTIVE.has(job.status) ? 'cancelling' : status)
      ),
      bar,
      h(
        'div',
        { class: 'qlm-row qlm-small' },
        h('span', { class: 'qlm-job-progress' }, `${job.done}/${total} (${percent}%)`),
        best !== null
          ? h('span', { class: 'qlm-dim', title: compact(job.best?.params) }, `best ${job.objective ?? ''} ${num(best, 3)}`)
          : null,
        h('span', { class: 'qlm-dim' }, stamp(job.created_at)),
        cancel
      ),
      job.error ? h('div', { class: 'qlm-error' }, `${job.error.code}: ${job.error.message}`) : null,
      job.status === 'abandoned'
        ? h(
            'div',
            { class: 'qlm-dim qlm-small qlm-resume-hint' },
            `its process is gone; resume with qlm.optimize.resume('${job.id}')`
          )
        : null
    );
  }

  private async _cancel(job: IJob, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    try {
      await requestAPI(`jobs/${encodeURIComponent(job.id)}/cancel`, { method: 'POST' });
      job.cancel_requested = true;
      this.render();
      this._changed();
    } catch (error) {
      button.disabled = false;
      void showErrorMessage('Could not cancel the job', error as Error);
    }
  }
}

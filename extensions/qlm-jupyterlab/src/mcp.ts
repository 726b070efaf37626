/** MCP server status as recorded in the event log, with Copy-config buttons. */

import { Clipboard, Notification } from '@jupyterlab/apputils';
import { copyIcon } from '@jupyterlab/ui-components';

import { requestAPI } from './api';
import { clock, h, section } from './dom';
import { IMCPServer, IMCPStatus, JSONObject } from './types';

function copyButton(label: string, config: JSONObject, note: string): HTMLElement {
  const button = h('button', { class: 'jp-Button jp-mod-styled jp-mod-accept qlm-small-button qlm-copy', title: note });
  button.append(copyIcon.element({ tag: 'span', className: 'qlm-button-icon' }), document.createTextNode(label));
  button.addEventListener('click', () => {
    Clipboard.copyToSystem(JSON.stringify(config, null, 2));
    Notification.success(`Copied the MCP client configuration. ${note}`, { autoClose: 5000 });
  });
  return button;
}

export class MCPSection {
  readonly root: HTMLElement;
  private readonly _body: HTMLElement;
  private readonly _count: HTMLElement;
  private _status: IMCPStatus | null = null;

  constructor() {
    const parts = section('MCP servers', 'mcp');
    this.root = parts.root;
    this._body = parts.body;
    this._count = parts.count;
    this.render();
  }

  async refresh(): Promise<void> {
    this._status = await requestAPI<IMCPStatus>('mcp');
    this.render();
  }

  private _server(server: IMCPServer): HTMLElement {
    const up = server.status === 'running' && server.reachable !== false;
    const state = server.status === 'running' ? (server.reachable === false ? 'not reachable' : 'running') : 'stopped';
    const copy = server.config.http
      ? copyButton('Copy config', server.config.http, 'Replace the Authorization placeholder with the server token.')
      : copyButton('Copy stdio config', server.config.stdio, 'Runs `qlm mcp --stdio` on this workspace.');
    return h(
      'li',
      { class: 'qlm-mcp-server', 'data-status': state },
      h(
        'div',
        { class: 'qlm-row' },
        h('span', { class: `qlm-dot ${up ? 'qlm-dot-on' : 'qlm-dot-off'}` }),
        h('span', { class: 'qlm-strong qlm-url' }, server.url ?? `${server.transport} server`),
        h('span', { class: 'qlm-dim' }, `${state} · since ${clock(server.status === 'running' ? server.started_at : server.stopped_at)}`)
      ),
      server.status === 'running' ? h('div', { class: 'qlm-row' }, copy) : null
    );
  }

  render(): void {
    const status = this._status;
    if (!status) {
      this._body.replaceChildren(h('div', { class: 'qlm-empty' }, 'Loading…'));
      return;
    }
    const running = status.servers.filter(s => s.status === 'running' && s.reachable !== false);
    this._count.textContent = running.length ? String(running.length) : '';
    const clients = status.clients.length
      ? h(
          'ul',
          { class: 'qlm-list' },
          ...status.clients.map(c =>
            h('li', { class: 'qlm-small' }, h('span', { class: 'qlm-strong' }, c.client), ` ${c.version} · ${c.transport} · since ${clock(c.connected_at)}`)
          )
        )
      : h('div', { class: 'qlm-empty' }, 'No client has connected.');
    this._body.replaceChildren(
      status.servers.length
        ? h('ul', { class: 'qlm-list' }, ...status.servers.map(s => this._server(s)))
        : h('div', { class: 'qlm-empty' }, 'No MCP server has announced itself. Start one with qlm.mcp.start() in a kernel or `qlm mcp --http`.'),
      h('div', { class: 'qlm-subtitle' }, `Clients (${status.clients.length}) · ${status.tool_calls} tool calls${status.tool_failures ? `, ${status.tool_failures} failed` : ''}`),
      clients,
      h('div', { class: 'qlm-row' }, copyButton('Copy stdio config', status.stdio_config, 'Runs `qlm mcp --stdio` on this workspace.')),
      h('div', { class: 'qlm-note' }, 'Status is derived from the mcp.* events in the workspace log; tokens are never stored.')
    );
  }
}

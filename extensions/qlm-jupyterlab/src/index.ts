/** QLM for JupyterLab: the sidebar plugin and its palette/launcher commands. */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, showErrorMessage, WidgetTracker } from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';

import { newStrategy, openQuickstart } from './commands';
import { openHealSession } from './heal';
import { qlmIcon, strategyIcon } from './icons';
import { QLMPanel } from './panel';
import { openRun } from './report';

const CATEGORY = 'QLM';

export namespace CommandIDs {
  export const showPanel = 'qlm:show-panel';
  export const refresh = 'qlm:refresh';
  export const newStrategy = 'qlm:new-strategy';
  export const openQuickstart = 'qlm:open-quickstart';
  export const openRun = 'qlm:open-run';
  export const openHeal = 'qlm:open-heal-session';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'qlm-jupyterlab:plugin',
  description: 'QLM sidebar: jobs, runs, live events, heal sessions and MCP status across notebooks.',
  autoStart: true,
  optional: [ICommandPalette, ILauncher, ILayoutRestorer, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    restorer: ILayoutRestorer | null,
    browser: IDefaultFileBrowser | null
  ) => {
    const tracker = new WidgetTracker<MainAreaWidget>({ namespace: 'qlm-views' });
    const show = (widget: MainAreaWidget) => {
      const existing = tracker.find(w => w.id === widget.id);
      if (existing) {
        existing.dispose();
      }
      void tracker.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
    };

    app.commands.addCommand(CommandIDs.openRun, {
      label: 'Open QLM Run Report',
      execute: async args => {
        try {
          show(await openRun(Number(args.id)));
        } catch (error) {
          void showErrorMessage('QLM run', error as Error);
        }
      }
    });
    app.commands.addCommand(CommandIDs.openHeal, {
      label: 'Open QLM Heal Session',
      execute: async args => {
        try {
          show(await openHealSession(String(args.id)));
        } catch (error) {
          void showErrorMessage('QLM heal session', error as Error);
        }
      }
    });

    const panel = new QLMPanel({
      openRun: run => void app.commands.execute(CommandIDs.openRun, { id: run.id }),
      openHeal: session => void app.commands.execute(CommandIDs.openHeal, { id: session.id })
    });
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'qlm-sidebar');

    app.commands.addCommand(CommandIDs.showPanel, {
      label: 'Show QLM Panel',
      caption: 'Jobs, runs, live events, heal sessions and MCP status',
      icon: qlmIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh QLM Panel',
      execute: () => panel.refreshAll()
    });
    app.commands.addCommand(CommandIDs.newStrategy, {
      label: args => (args.isLauncher ? 'QLM Strategy' : 'New QLM Strategy from Template'),
      caption: 'A new strategy file (SMA cross template) in the current folder',
      icon: strategyIcon,
      execute: () => newStrategy(app, browser?.model.path ?? '')
    });
    app.commands.addCommand(CommandIDs.openQuickstart, {
      label: args => (args.isLauncher ? 'QLM Quickstart' : 'Open QLM Quickstart Notebook'),
      caption: 'Open the QLM quickstart notebook',
      icon: qlmIcon,
      execute: () => openQuickstart(app)
    });

    for (const command of [CommandIDs.showPanel, CommandIDs.refresh, CommandIDs.newStrategy, CommandIDs.openQuickstart]) {
      palette?.addItem({ command, category: CATEGORY });
    }
    launcher?.add({ command: CommandIDs.newStrategy, category: CATEGORY, rank: 1 });
    launcher?.add({ command: CommandIDs.openQuickstart, category: CATEGORY, rank: 2 });
  }
};

export default plugin;

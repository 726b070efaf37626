/** Palette and launcher commands: a new strategy file from the template, the quickstart notebook. */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { InputDialog, showErrorMessage } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';

import { requestAPI } from './api';

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** The strategy template (the shape of strategies/sma_cross.py), with the class named after the file. */
export function strategyTemplate(name: string): string {
  const cls = name
    .split('_')
    .filter(Boolean)
    .map(part => part[0].toUpperCase() + part.slice(1))
    .join('') || 'MyStrategy';
  return `"""${name}: a QLM strategy. Backtest it with qlm.backtest("${name}.py", df, fast=10, slow=50)."""

from qlm_kernel import Param, Signals, Strategy
from qlm_kernel import indicators as ta


class ${cls}(Strategy):
    fast = Param(10, min=2, max=200, doc="fast moving-average length")
    slow = Param(50, min=5, max=500, doc="slow moving-average length")

    def signals(self, data):
        fast, slow = ta.sma(data["close"], self.fast), ta.sma(data["close"], self.slow)
        return Signals(
            entry_long=ta.crossed_above(fast, slow),
            exit_long=ta.crossed_below(fast, slow),
        )
`;
}

async function exists(app: JupyterFrontEnd, path: string): Promise<boolean> {
  try {
    await app.serviceManager.contents.get(path, { content: false });
    return true;
  } catch {
    return false;
  }
}

/** Ask for a name, write `<cwd>/<name>.py` from the template (never overwriting) and open it. */
export async function newStrategy(app: JupyterFrontEnd, cwd: string): Promise<void> {
  const answer = await InputDialog.getText({
    title: 'New QLM strategy',
    label: 'File name (letters, digits, _):',
    text: 'my_strategy'
  });
  if (!answer.button.accept || answer.value === null) {
    return;
  }
  const name = answer.value.trim().replace(/\.py$/, '');
  if (!NAME.test(name)) {
    await showErrorMessage('New QLM strategy', `"${name}" is not a valid name: use letters, digits and _.`);
    return;
  }
  const path = PathExt.join(cwd, `${name}.py`);
  if (await exists(app, path)) {
    await showErrorMessage('New QLM strategy', `${path} already exists; choose another name.`);
    return;
  }
  await app.serviceManager.contents.save(path, { type: 'file', format: 'text', content: strategyTemplate(name) });
  await app.commands.execute('docmanager:open', { path });
}

/** Open notebooks/quickstart.ipynb (or quickstart.ipynb); else save the bundled one as qlm_quickstart.ipynb. */
export async function openQuickstart(app: JupyterFrontEnd): Promise<void> {
  for (const path of ['notebooks/quickstart.ipynb', 'quickstart.ipynb', 'qlm_quickstart.ipynb']) {
    if (await exists(app, path)) {
      await app.commands.execute('docmanager:open', { path, factory: 'Notebook' });
      return;
    }
  }
  try {
    const reply = await requestAPI<{ content: any }>('quickstart');
    const path = 'qlm_quickstart.ipynb';
    await app.serviceManager.contents.save(path, { type: 'notebook', format: 'json', content: reply.content });
    await app.commands.execute('docmanager:open', { path, factory: 'Notebook' });
  } catch (error) {
    await showErrorMessage('QLM quickstart', error as Error);
  }
}

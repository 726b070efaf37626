/** QLM's icons, registered with JupyterLab's icon registry (they follow the theme's colours). */

import { LabIcon } from '@jupyterlab/ui-components';

export const qlmIcon = new LabIcon({
  name: 'qlm:logo',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="3" y="13" width="3" height="8" rx="0.5"/>
    <rect x="8.5" y="9" width="3" height="12" rx="0.5"/>
    <rect x="14" y="11" width="3" height="10" rx="0.5"/>
    <path d="M2 10.5l6-5 5 3.5 8-6.5 1 1.3-9 7.3-5-3.5-5 4.2z"/>
  </g>
</svg>`
});

export const healIcon = new LabIcon({
  name: 'qlm:heal',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M10 3h4v7h7v4h-7v7h-4v-7H3v-4h7z"/>
</svg>`
});

export const strategyIcon = new LabIcon({
  name: 'qlm:strategy',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M4 3h12l4 4v14H4zm2 2v14h12V8h-3V5zm2 9l3-3 2 2 3-4 1.5 1.2L13 17.5l-2-2-1.6 1.6z"/>
</svg>`
});

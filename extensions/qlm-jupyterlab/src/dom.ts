/** Small DOM and formatting helpers shared by the panel sections. */

type Child = Node | string | null | undefined | false;

/** `h('div', {class: 'x'}, child, ...)`: an element with attributes and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: { [name: string]: string | number | boolean | undefined } = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) {
      continue;
    }
    node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** A number with `digits` decimals, '–' when absent. */
export function num(value: unknown, digits = 2): string {
  return typeof value === 'number' && isFinite(value) ? value.toFixed(digits) : '–';
}

/** A fraction as a percentage ('12.3%'). */
export function pct(value: unknown, digits = 1): string {
  return typeof value === 'number' && isFinite(value) ? `${(value * 100).toFixed(digits)}%` : '–';
}

/** 'HH:MM:SS' local time of an ISO string or epoch seconds. */
export function clock(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === '') {
    return '–';
  }
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  return isNaN(date.getTime()) ? String(value) : date.toLocaleTimeString([], { hour12: false });
}

/** 'YYYY-MM-DD HH:MM' local time of an ISO string. */
export function stamp(value: string | null | undefined): string {
  if (!value) {
    return '–';
  }
  const date = new Date(value);
  if (isNaN(date.getTime())) {
    return value;
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(
    date.getHours()
  )}:${pad(date.getMinutes())}`;
}

/** A compact one-line JSON text cut to `width` characters. */
export function compact(value: unknown, width = 120): string {
  const text = JSON.stringify(value) ?? '';
  return text.length > width ? text.slice(0, width - 1) + '…' : text;
}

/** An fnmatch-style pattern ('job.*') as a RegExp, as the server matches topics. */
export function globRegExp(pattern: string): RegExp {
  let source = '';
  for (const ch of pattern) {
    if (ch === '*') {
      source += '.*';
    } else if (ch === '?') {
      source += '.';
    } else {
      source += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}$`);
}

/** A collapsible section with a title, a count badge and a body. */
export function section(title: string, id: string): {
  root: HTMLDetailsElement;
  body: HTMLDivElement;
  count: HTMLSpanElement;
  tools: HTMLSpanElement;
} {
  const count = h('span', { class: 'qlm-count' });
  const tools = h('span', { class: 'qlm-section-tools' });
  const body = h('div', { class: 'qlm-section-body' });
  const root = h(
    'details',
    { class: 'qlm-section', open: true, 'data-section': id },
    h('summary', { class: 'qlm-section-title' }, h('span', {}, title), count, tools),
    body
  );
  return { root, body, count, tools };
}

// Shared by the report summaries (report.js, portfolio.js): reportkit.py's `esm` puts this file before
// the widget's own code in one ES module (anywidget loads `_esm` from a blob: no relative imports).

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function errorPanel(err) {
  const box = el("div", "qlmw-report-error");
  box.append(el("div", "qlmw-report-error-head", `${err.type || "Error"} · ${err.code || ""}`));
  box.append(el("div", "qlmw-report-error-message", err.message || ""));
  const ctx = err.context || {};
  if (ctx.file && ctx.file !== "<string>") {
    box.append(el("div", "qlmw-report-where", `${ctx.file}${ctx.line ? ", line " + ctx.line : ""}${ctx.function ? " in " + ctx.function : ""}`));
  }
  if (ctx.excerpt) box.append(el("pre", "qlmw-code", ctx.excerpt));
  if (err.hint) box.append(el("div", "qlmw-report-hint", `hint: ${err.hint}`));
  const rest = Object.fromEntries(Object.entries(ctx).filter(([k]) => !["excerpt", "traceback"].includes(k)));
  if (Object.keys(rest).length) {
    const d = el("details", "qlmw-report-more");
    d.append(el("summary", null, "context"), el("pre", "qlmw-code", JSON.stringify(rest, null, 1)));
    box.append(d);
  }
  if (err.traceback) {
    const d = el("details", "qlmw-report-more");
    d.append(el("summary", null, "traceback"), el("pre", "qlmw-code", err.traceback));
    box.append(d);
  }
  return box;
}

// The result's warnings (code, message, why), the params line and the two-column stats table.
function resultHeader(box, model) {
  const warnings = model.get("warnings") || [];
  if (warnings.length) {
    const list = el("div", "qlmw-report-warnings");
    for (const w of warnings) {
      const row = el("div", "qlmw-report-warning");
      row.dataset.code = w.code;
      row.append(el("b", null, w.code), document.createTextNode(" " + w.message));
      if (w.hint) row.append(el("div", "qlmw-report-hint", "why it matters: " + w.hint));
      list.append(row);
    }
    box.append(list);
  }
  const params = model.get("params") || {};
  const names = Object.keys(params);
  if (names.length) box.append(el("div", "qlmw-report-params", names.map((k) => `${k}=${params[k]}`).join(", ")));
}

function statsTable(rows, cls) {
  const table = el("table", cls);
  const half = Math.ceil(rows.length / 2);
  for (let i = 0; i < half; i++) {
    const tr = el("tr");
    for (const row of [rows[i], rows[i + half]]) {
      if (!row) continue;
      const td = el("td", null, row[1]);
      td.dataset.stat = row[0];
      tr.append(el("th", null, row[0]), td);
    }
    table.append(tr);
  }
  return table;
}

// render() of a report summary: the title and its done/failed badge, then the error panel, or
// body(box, model) for a result; redrawn on a change of any of `traits`.
function renderReport({ model, el: root }, { boxClass, title, traits, body }) {
  const box = el("div", boxClass);
  root.appendChild(box);

  function update() {
    box.replaceChildren();
    const head = el("div", "qlmw-head");
    head.append(el("span", "qlmw-title", model.get("title") || title));
    const err = model.get("error");
    const badge = el("span", "qlmw-badge", err ? "failed" : "done");
    badge.dataset.status = err ? "failed" : "done";
    head.append(badge);
    box.append(head);
    box.dataset.status = err ? "failed" : "done";
    if (err) {
      box.append(errorPanel(err));
      return;
    }
    body(box, model);
  }
  for (const name of traits) model.on(`change:${name}`, update);
  update();
  return () => { for (const name of traits) model.off(`change:${name}`, update); };
}

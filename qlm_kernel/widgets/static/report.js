// BacktestReport summary: title, params, stats table, or the structured error panel.

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function errorPanel(err) {
  const box = el("div", "qlm-report-error");
  box.append(el("div", "qlm-report-error-head", `${err.type || "Error"} · ${err.code || ""}`));
  box.append(el("div", "qlm-report-error-message", err.message || ""));
  const ctx = err.context || {};
  if (ctx.file && ctx.file !== "<string>") {
    box.append(el("div", "qlm-report-where", `${ctx.file}${ctx.line ? ", line " + ctx.line : ""}${ctx.function ? " in " + ctx.function : ""}`));
  }
  if (ctx.excerpt) box.append(el("pre", "qlm-code", ctx.excerpt));
  if (err.hint) box.append(el("div", "qlm-report-hint", `hint: ${err.hint}`));
  const rest = Object.fromEntries(Object.entries(ctx).filter(([k]) => !["excerpt", "traceback"].includes(k)));
  if (Object.keys(rest).length) {
    const d = el("details", "qlm-report-more");
    d.append(el("summary", null, "context"), el("pre", "qlm-code", JSON.stringify(rest, null, 1)));
    box.append(d);
  }
  if (err.traceback) {
    const d = el("details", "qlm-report-more");
    d.append(el("summary", null, "traceback"), el("pre", "qlm-code", err.traceback));
    box.append(d);
  }
  return box;
}

function render({ model, el: root }) {
  const box = el("div", "qlm-widget qlm-report");
  root.appendChild(box);

  function update() {
    box.replaceChildren();
    const head = el("div", "qlm-head");
    head.append(el("span", "qlm-title", model.get("title") || "Backtest"));
    const err = model.get("error");
    const badge = el("span", "qlm-badge", err ? "failed" : "done");
    badge.dataset.status = err ? "failed" : "done";
    head.append(badge);
    box.append(head);
    box.dataset.status = err ? "failed" : "done";
    if (err) {
      box.append(errorPanel(err));
      return;
    }
    const params = model.get("params") || {};
    const names = Object.keys(params);
    if (names.length) box.append(el("div", "qlm-report-params", names.map((k) => `${k}=${params[k]}`).join(", ")));
    const table = el("table", "qlm-report-stats");
    const rows = model.get("stats") || [];
    const half = Math.ceil(rows.length / 2);
    for (let i = 0; i < half; i++) {
      const tr = el("tr");
      for (const row of [rows[i], rows[i + half]]) {
        if (!row) continue;
        const th = el("th", null, row[0]);
        const td = el("td", null, row[1]);
        td.dataset.stat = row[0];
        tr.append(th, td);
      }
      table.append(tr);
    }
    box.append(table);
  }
  const names = ["title", "params", "stats", "error"];
  for (const name of names) model.on(`change:${name}`, update);
  update();
  return () => { for (const name of names) model.off(`change:${name}`, update); };
}

export default { render };

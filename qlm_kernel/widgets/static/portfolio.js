// PortfolioReport summary: title, universe and symbols, warnings, params, the portfolio stats table, the
// per-symbol table (symbol_stats, formatted in Python), or the error panel.

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

function warningList(warnings) {
  const list = el("div", "qlmw-report-warnings");
  for (const w of warnings) {
    const row = el("div", "qlmw-report-warning");
    row.dataset.code = w.code;
    row.append(el("b", null, w.code), document.createTextNode(" " + w.message));
    if (w.hint) row.append(el("div", "qlmw-report-hint", "why it matters: " + w.hint));
    list.append(row);
  }
  return list;
}

function statsTable(rows) {
  const table = el("table", "qlmw-report-stats qlmw-portfolio-stats");
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

function symbolTable(columns, rows) {
  const wrap = el("div", "qlmw-portfolio-symbols-wrap");
  const table = el("table", "qlmw-portfolio-symbols");
  const head = el("tr");
  head.append(el("th", null, "Symbol"));
  for (const [key, label] of columns) {
    const th = el("th", null, label);
    th.dataset.col = key;
    head.append(th);
  }
  const thead = el("thead");
  thead.append(head);
  const tbody = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    tr.dataset.symbol = row.symbol;
    tr.append(el("th", "qlmw-portfolio-symbol", row.symbol));
    for (const [key, text] of row.cells) {
      const td = el("td", null, text);
      td.dataset.col = key;
      tr.append(td);
    }
    tbody.append(tr);
  }
  table.append(thead, tbody);
  wrap.append(table);
  return wrap;
}

function render({ model, el: root }) {
  const box = el("div", "qlmw-widget qlmw-report qlmw-portfolio");
  root.appendChild(box);

  function update() {
    box.replaceChildren();
    const head = el("div", "qlmw-head");
    head.append(el("span", "qlmw-title", model.get("title") || "Portfolio"));
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
    const symbols = model.get("symbols") || [];
    if (symbols.length) {
      const shown = symbols.slice(0, 20).join(", ") + (symbols.length > 20 ? `, … (${symbols.length - 20} more)` : "");
      const facts = el("div", "qlmw-portfolio-facts");
      facts.append(el("b", null, "universe"), document.createTextNode(` ${model.get("universe") || ""} · `),
                   el("b", null, `${symbols.length} symbol${symbols.length === 1 ? "" : "s"}`),
                   document.createTextNode(` ${shown}`));
      box.append(facts);
    }
    const warnings = model.get("warnings") || [];
    if (warnings.length) box.append(warningList(warnings));
    const params = model.get("params") || {};
    const names = Object.keys(params);
    if (names.length) box.append(el("div", "qlmw-report-params", names.map((k) => `${k}=${params[k]}`).join(", ")));
    box.append(el("div", "qlmw-portfolio-heading", "Portfolio"));
    box.append(statsTable(model.get("stats") || []));
    const rows = model.get("symbol_rows") || [];
    if (rows.length) {
      box.append(el("div", "qlmw-portfolio-heading", "By symbol"));
      box.append(symbolTable(model.get("symbol_columns") || [], rows));
      const more = model.get("more_symbols") || 0;
      if (more) box.append(el("div", "qlmw-report-hint", `… ${more} more symbols (res.symbol_stats has them all)`));
    }
  }
  const names = ["title", "universe", "symbols", "params", "stats", "symbol_columns", "symbol_rows",
                 "more_symbols", "warnings", "error"];
  for (const name of names) model.on(`change:${name}`, update);
  update();
  return () => { for (const name of names) model.off(`change:${name}`, update); };
}

export default { render };

// PortfolioReport summary: title, universe and symbols, warnings, params, the portfolio stats table, the
// per-symbol table (symbol_stats, formatted in Python), or the error panel.
// Runs after reportkit.js (el, errorPanel, resultHeader, statsTable, renderReport): see reportkit.py.

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

function body(box, model) {
  const symbols = model.get("symbols") || [];
  if (symbols.length) {
    const shown = symbols.slice(0, 20).join(", ") + (symbols.length > 20 ? `, … (${symbols.length - 20} more)` : "");
    const facts = el("div", "qlmw-portfolio-facts");
    facts.append(el("b", null, "universe"), document.createTextNode(` ${model.get("universe") || ""} · `),
                 el("b", null, `${symbols.length} symbol${symbols.length === 1 ? "" : "s"}`),
                 document.createTextNode(` ${shown}`));
    box.append(facts);
  }
  resultHeader(box, model);
  box.append(el("div", "qlmw-portfolio-heading", "Portfolio"));
  box.append(statsTable(model.get("stats") || [], "qlmw-report-stats qlmw-portfolio-stats"));
  const rows = model.get("symbol_rows") || [];
  if (rows.length) {
    box.append(el("div", "qlmw-portfolio-heading", "By symbol"));
    box.append(symbolTable(model.get("symbol_columns") || [], rows));
    const more = model.get("more_symbols") || 0;
    if (more) box.append(el("div", "qlmw-report-hint", `… ${more} more symbols (res.symbol_stats has them all)`));
  }
}

function render(ctx) {
  return renderReport(ctx, {
    boxClass: "qlmw-widget qlmw-report qlmw-portfolio",
    title: "Portfolio",
    traits: ["title", "universe", "symbols", "params", "stats", "symbol_columns", "symbol_rows",
             "more_symbols", "warnings", "error"],
    body,
  });
}

export default { render };

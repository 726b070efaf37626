// BacktestReport summary: title, warnings (code, message, why), params, stats table, or the error panel.
// Runs after reportkit.js (el, errorPanel, resultHeader, statsTable, renderReport): see reportkit.py.

function render(ctx) {
  return renderReport(ctx, {
    boxClass: "qlmw-widget qlmw-report",
    title: "Backtest",
    traits: ["title", "params", "stats", "warnings", "error"],
    body(box, model) {
      resultHeader(box, model);
      box.append(statsTable(model.get("stats") || [], "qlmw-report-stats"));
    },
  });
}

export default { render };

// OverfitReportView summary: the verdict (green when the edge holds), then each check with its result and
// its own verdict, or the error panel. Runs after reportkit.js (el, errorPanel, renderReport).

function render(ctx) {
  return renderReport(ctx, {
    boxClass: "qlmw-widget qlmw-overfit",
    title: "Overfitting report",
    traits: ["title", "verdict", "passed", "checks", "error"],
    body(box, model) {
      const verdict = el("div", "qlmw-overfit-verdict", model.get("verdict"));
      verdict.dataset.passed = model.get("passed") ? "true" : "false";
      box.append(verdict);
      const table = el("table", "qlmw-overfit-checks");
      const body = el("tbody");
      for (const c of model.get("checks") || []) {
        const tr = el("tr");
        tr.dataset.check = c.name;
        tr.dataset.passed = c.passed ? "true" : "false";
        tr.append(el("th", null, c.name), el("td", "qlmw-overfit-result", c.passed ? "passed" : "failed"),
                  el("td", "qlmw-overfit-why", c.verdict));
        body.append(tr);
      }
      table.append(body);
      box.append(table);
    },
  });
}

export default { render };

// PaperPnL: equity curve, P&L, position, cash, counts and the latest fills of a paper session.

const SVG = "http://www.w3.org/2000/svg";

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function money(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  return Number(v).toLocaleString(undefined, { maximumFractionDigits: 2, minimumFractionDigits: 2 });
}

function drawCurve(svg, curve) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = 420, H = 110, P = 8;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  if (!curve || curve.length < 2) return;
  const xs = curve.map((p) => p[0]), ys = curve.map((p) => p[1]);
  const xmin = xs[0], xmax = Math.max(xs[xs.length - 1], xmin + 1);
  let ymin = Math.min(...ys), ymax = Math.max(...ys);
  if (ymin === ymax) { ymin -= 1; ymax += 1; }
  const sx = (x) => P + ((x - xmin) / (xmax - xmin)) * (W - 2 * P);
  const sy = (y) => H - P - ((y - ymin) / (ymax - ymin)) * (H - 2 * P);
  let d = `M ${sx(xs[0])} ${sy(ys[0])}`;
  for (let i = 1; i < xs.length; i++) d += ` L ${sx(xs[i])} ${sy(ys[i])}`;
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", d);
  path.setAttribute("class", ys[ys.length - 1] >= ys[0] ? "qlmw-pnl-up" : "qlmw-pnl-down");
  svg.appendChild(path);
}

function render({ model, el: root }) {
  const box = el("div", "qlmw-widget qlmw-paper");
  const head = el("div", "qlmw-head");
  const title = el("span", "qlmw-title");
  const badge = el("span", "qlmw-badge");
  head.append(title, badge);
  const figures = el("div", "qlmw-paper-figures");
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "qlmw-chart qlmw-paper-curve");
  const fills = el("table", "qlmw-paper-fills");
  const error = el("pre", "qlmw-error-text");
  box.append(head, figures, svg, fills, error);
  root.appendChild(box);

  function update() {
    const sid = model.get("session_id"), status = model.get("status");
    title.textContent = sid ? `Paper session ${model.get("strategy") || ""} · ${sid}` : "Paper trading · waiting for the next session";
    badge.textContent = status;
    badge.dataset.status = status === "finished" ? "done" : status;
    box.dataset.status = status;
    const pnl = model.get("pnl");
    figures.replaceChildren(
      el("span", "qlmw-paper-figure", `bars ${model.get("bars")}`),
      el("span", "qlmw-paper-figure", `equity ${money(model.get("equity"))}`),
      el("span", `qlmw-paper-figure qlmw-paper-pnl ${pnl >= 0 ? "up" : "down"}`, `P&L ${pnl > 0 ? "+" : ""}${money(pnl)}`),
      el("span", "qlmw-paper-figure", `position ${Number(model.get("position") || 0).toPrecision(6)}`),
      el("span", "qlmw-paper-figure", `cash ${money(model.get("cash"))}`),
      el("span", "qlmw-paper-figure", `orders ${model.get("n_orders")} · fills ${model.get("n_fills")} · refused ${model.get("n_refused")}`),
    );
    drawCurve(svg, model.get("curve"));
    const rows = model.get("fills") || [];
    fills.replaceChildren();
    if (rows.length) {
      const header = el("tr");
      for (const h of ["side", "size", "price", "fees", "reason"]) header.append(el("th", "", h));
      fills.append(header);
      for (const f of rows.slice().reverse()) {
        const tr = el("tr");
        tr.append(el("td", "", f.side ?? ""), el("td", "", f.size === null || f.size === undefined ? "" : Number(f.size).toPrecision(6)),
                  el("td", "", money(f.price)), el("td", "", money(f.fees)), el("td", "", f.reason ?? ""));
        fills.append(tr);
      }
    }
    const err = model.get("error");
    error.style.display = err ? "block" : "none";
    error.textContent = err;
  }

  const names = ["session_id", "strategy", "status", "bars", "equity", "pnl", "position", "cash", "n_orders",
                 "n_fills", "n_refused", "curve", "fills", "error"];
  for (const name of names) model.on(`change:${name}`, update);
  update();
}

export default { render };

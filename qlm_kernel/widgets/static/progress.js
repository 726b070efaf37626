// OptimizationProgress: bar, counts, rate, ETA, best-so-far, a best-objective chart and Cancel.

function fmtSeconds(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - 60 * m)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function fmtNumber(v, digits = 4) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  return Number(v).toPrecision(digits);
}

function fmtParams(params) {
  if (!params) return "–";
  return Object.entries(params).map(([k, v]) => `${k}=${v}`).join(", ");
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

function drawChart(svg, history, total) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = 420, H = 110, P = 28;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  if (!history || history.length === 0) {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", W / 2); t.setAttribute("y", H / 2); t.setAttribute("text-anchor", "middle");
    t.setAttribute("class", "qlmw-chart-empty"); t.textContent = "best objective appears here";
    svg.appendChild(t);
    return;
  }
  const xs = history.map((p) => p[0]), ys = history.map((p) => p[1]);
  const xmax = Math.max(total || 0, ...xs, 1);
  let ymin = Math.min(...ys), ymax = Math.max(...ys);
  if (ymin === ymax) { ymin -= 0.5; ymax += 0.5; }
  const sx = (x) => P + (x / xmax) * (W - P - 8);
  const sy = (y) => H - 16 - ((y - ymin) / (ymax - ymin)) * (H - 26);
  let d = `M ${sx(xs[0])} ${sy(ys[0])}`;
  for (let i = 1; i < xs.length; i++) d += ` H ${sx(xs[i])} V ${sy(ys[i])}`;
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", d); path.setAttribute("class", "qlmw-chart-line");
  svg.appendChild(path);
  const axis = document.createElementNS(SVG, "path");
  axis.setAttribute("d", `M ${P} 6 V ${H - 16} H ${W - 8}`); axis.setAttribute("class", "qlmw-chart-axis");
  svg.appendChild(axis);
  const labels = [[P - 3, sy(ymax) + 4, fmtNumber(ymax, 3), "end"], [P - 3, sy(ymin) + 4, fmtNumber(ymin, 3), "end"],
                  [W - 8, H - 3, `${xmax} trials`, "end"], [P, H - 3, "0", "start"]];
  for (const [x, y, text, anchor] of labels) {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("text-anchor", anchor);
    t.setAttribute("class", "qlmw-chart-label"); t.textContent = text;
    svg.appendChild(t);
  }
  const last = history[history.length - 1];
  const dot = document.createElementNS(SVG, "circle");
  dot.setAttribute("cx", sx(last[0])); dot.setAttribute("cy", sy(last[1])); dot.setAttribute("r", 3);
  dot.setAttribute("class", "qlmw-chart-dot");
  svg.appendChild(dot);
}

function render({ model, el: root }) {
  const box = el("div", "qlmw-widget qlmw-progress");
  const head = el("div", "qlmw-head");
  const title = el("span", "qlmw-title");
  const badge = el("span", "qlmw-badge");
  head.append(title, badge);
  const barOuter = el("div", "qlmw-bar");
  const barInner = el("div", "qlmw-bar-fill");
  const pct = el("span", "qlmw-progress-percent");
  barOuter.append(barInner, pct);
  const counts = el("div", "qlmw-progress-counts");
  const best = el("div", "qlmw-progress-best");
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "qlmw-chart");
  const error = el("pre", "qlmw-error-text");
  const cancel = el("button", "qlmw-button qlmw-cancel", "Cancel");
  cancel.addEventListener("click", () => {
    cancel.disabled = true;
    model.send({ type: "cancel" });
  });
  const foot = el("div", "qlmw-foot");
  foot.append(cancel);
  box.append(head, barOuter, counts, best, svg, error, foot);
  root.appendChild(box);

  function update() {
    const status = model.get("status");
    const done = model.get("done"), total = model.get("total");
    const jobId = model.get("job_id");
    const percent = total > 0 ? (100 * done) / total : status === "done" ? 100 : 0;
    const kind = model.get("kind"), strategy = model.get("strategy");
    title.textContent = jobId
      ? `Optimization ${kind ? "(" + kind + ") " : ""}${strategy ? strategy + " " : ""}· job ${jobId}`
      : "Optimization · waiting for the next job";
    badge.textContent = status;
    badge.dataset.status = status;
    box.dataset.status = status;
    barInner.style.width = `${Math.min(100, percent).toFixed(1)}%`;
    pct.textContent = percent > 0 && percent < 10 ? `${percent.toFixed(1)}%` : `${Math.floor(percent)}%`;
    const rate = model.get("rate");
    counts.textContent = `trials ${done} / ${total || "?"} · ${rate ? rate.toFixed(1) + " /s" : "– /s"}` +
      ` · ETA ${status === "running" ? fmtSeconds(model.get("eta_s")) : "–"}` +
      ` · elapsed ${fmtSeconds(model.get("elapsed_s"))}`;
    const objective = model.get("objective") || "objective";
    best.textContent = `best ${objective} = ${fmtNumber(model.get("best_value"))} at ${fmtParams(model.get("best_params"))}`;
    drawChart(svg, model.get("history"), total);
    const err = model.get("error");
    error.style.display = err ? "block" : "none";
    error.textContent = err ? `${err.code || err.type || "error"}: ${err.message || ""}${err.hint ? "\nhint: " + err.hint : ""}` : "";
    cancel.disabled = !(status === "running" || (status === "waiting" && jobId));
    cancel.style.display = ["done", "failed", "cancelled", "abandoned"].includes(status) ? "none" : "";
  }
  const names = ["status", "done", "total", "rate", "eta_s", "elapsed_s", "best_value", "best_params",
                 "history", "error", "job_id", "kind", "strategy", "objective"];
  for (const name of names) model.on(`change:${name}`, update);
  update();
  return () => { for (const name of names) model.off(`change:${name}`, update); };
}

export default { render };

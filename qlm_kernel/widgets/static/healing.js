// HealingTrace: a timeline of heal steps — error with its excerpt, thinking, diff, re-run, outcome.

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function num(v, digits = 4) {
  return v === null || v === undefined || !isFinite(v) ? "–" : Number(v).toPrecision(digits);
}

function errorPanel(err) {
  const box = el("div", "qlmw-heal-error");
  if (!err || typeof err !== "object") return box;
  box.append(el("div", "qlmw-heal-error-head", `${err.code || err.type || "error"}: ${err.message || ""}`));
  const ctx = err.context || {};
  if (ctx.file) {
    const where = String(ctx.file).split("/").pop();
    box.append(el("div", "qlmw-heal-where", `${where}${ctx.line ? ", line " + ctx.line : ""}${ctx.function ? " in " + ctx.function : ""}`));
  }
  if (ctx.excerpt) box.append(el("pre", "qlmw-code qlmw-heal-excerpt", ctx.excerpt));
  if (err.hint) box.append(el("div", "qlmw-heal-hint", `hint: ${err.hint}`));
  return box;
}

function diffView(diff) {
  const pre = el("pre", "qlmw-code qlmw-diff");
  for (const line of String(diff || "").split("\n")) {
    let cls = "qlmw-diff-ctx";
    if (line.startsWith("+++") || line.startsWith("---")) cls = "qlmw-diff-file";
    else if (line.startsWith("@@")) cls = "qlmw-diff-hunk";
    else if (line.startsWith("+")) cls = "qlmw-diff-add";
    else if (line.startsWith("-")) cls = "qlmw-diff-del";
    pre.append(el("span", cls, line || " "));
  }
  return pre;
}

function statsLine(stats) {
  if (!stats) return null;
  const keys = ["n_trades", "total_return", "sharpe", "max_drawdown", "final_value"];
  const show = (v) => (Number.isInteger(v) ? String(v) : num(v));
  return el("div", "qlmw-heal-stats", keys.filter((k) => k in stats).map((k) => `${k} ${show(stats[k])}`).join(" · "));
}

function collapsible(label, text) {
  const d = el("details", "qlmw-heal-more");
  d.append(el("summary", null, label), el("pre", "qlmw-code", text));
  return d;
}

function stepBody(step) {
  const data = step.data || {};
  const body = el("div", "qlmw-heal-body");
  switch (step.kind) {
    case "run":
    case "verify":
      if (data.error) body.append(errorPanel(data.error));
      else body.append(el("div", "qlmw-heal-ok", `passed (version ${data.version ?? "?"})`));
      if (data.stats) body.append(statsLine(data.stats));
      break;
    case "diagnose":
      body.append(collapsible("diagnosis sent to the model", data.text || JSON.stringify(data, null, 1)));
      break;
    case "prompt":
      body.append(collapsible("prompt", data.prompt || ""));
      break;
    case "reply":
      body.append(collapsible("model reply", data.text || data.reply || ""));
      break;
    case "thinking":
      body.append(el("div", "qlmw-heal-thinking", data.text || ""));
      break;
    case "refused":
      body.append(el("div", "qlmw-heal-refused", data.reason || JSON.stringify(data)));
      break;
    case "patch":
      body.append(el("div", "qlmw-heal-version", `saved as version ${data.version ?? "?"}`), diffView(data.diff));
      break;
    case "rollback":
      body.append(el("div", "qlmw-heal-version",
        `restored the code of version ${data.restored_from ?? "?"} as version ${data.version ?? "?"}`));
      break;
    case "finished":
      body.append(el("div", "qlmw-heal-outcome", `${data.status || ""}${data.healed ? " ✔" : ""} after ${data.attempts ?? 0} attempt(s)`));
      if (data.stats) body.append(statsLine(data.stats));
      break;
    default:
      body.append(el("pre", "qlmw-code", JSON.stringify(data, null, 1)));
  }
  return body;
}

function render({ model, el: root }) {
  const box = el("div", "qlmw-widget qlmw-heal");
  const head = el("div", "qlmw-head");
  const title = el("span", "qlmw-title");
  const badge = el("span", "qlmw-badge");
  head.append(title, badge);
  const summary = el("div", "qlmw-heal-summary");
  const list = el("ol", "qlmw-heal-steps");
  box.append(head, summary, list);
  root.appendChild(box);

  function update() {
    const sid = model.get("session_id");
    const strategy = model.get("strategy");
    title.textContent = sid ? `Healing ${strategy} · session ${sid}` : "Healing · waiting for the next session";
    const status = model.get("status");
    badge.textContent = status;
    badge.dataset.status = status;
    box.dataset.status = status;
    const v0 = model.get("original_version"), v1 = model.get("final_version");
    summary.textContent = `attempts ${model.get("attempts")} / ${model.get("max_attempts") || "?"}` +
      (model.get("model_name") ? ` · model ${model.get("model_name")}` : "") +
      (v0 !== null ? ` · version ${v0}${v1 !== null ? " → " + v1 : ""}` : "");
    const steps = model.get("steps") || [];
    list.replaceChildren();
    for (const step of steps) {
      const item = el("li", "qlmw-heal-step");
      item.dataset.kind = step.kind;
      const ok = step.ok === null || step.ok === undefined ? "" : step.ok ? "ok" : "failed";
      item.dataset.ok = ok;
      const line = el("div", "qlmw-heal-step-head");
      line.append(el("span", "qlmw-heal-kind", step.kind), el("span", "qlmw-heal-attempt", `attempt ${step.attempt}`),
        el("span", `qlmw-heal-result ${ok}`, ok), el("span", "qlmw-heal-time", `${num(step.duration_s, 2)} s`));
      item.append(line, stepBody(step));
      list.append(item);
    }
  }
  const names = ["session_id", "strategy", "status", "attempts", "max_attempts", "model_name",
                 "original_version", "final_version", "steps", "healed"];
  for (const name of names) model.on(`change:${name}`, update);
  update();
  return () => { for (const name of names) model.off(`change:${name}`, update); };
}

export default { render };

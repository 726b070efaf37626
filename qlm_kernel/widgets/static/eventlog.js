// EventLog: live bus events, newest first, with a topic filter (same rule as widgets/filters.py).

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function escapeRegex(ch) {
  return ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function topicFilter(text) {
  const terms = String(text || "").split(/[,\s]+/).filter((t) => t);
  if (terms.length === 0) return () => true;
  const regexes = terms.map((term) => {
    if (term.includes("*") || term.includes("?")) {
      const body = [...term].map((ch) => (ch === "*" ? ".*" : ch === "?" ? "." : escapeRegex(ch))).join("");
      return new RegExp(`^${body}$`);
    }
    return new RegExp(escapeRegex(term));
  });
  return (topic) => regexes.some((rx) => rx.test(topic));
}

function clock(seconds) {
  const d = new Date(seconds * 1000);
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function render({ model, el: root }) {
  const box = el("div", "qlmw-widget qlmw-eventlog");
  const head = el("div", "qlmw-head");
  const title = el("span", "qlmw-title");
  const input = el("input", "qlmw-eventlog-filter");
  input.type = "text";
  input.placeholder = "filter topics: job.*  heal  mcp.tool.*";
  const clear = el("button", "qlmw-button", "Clear");
  clear.addEventListener("click", () => model.send({ type: "clear" }));
  head.append(title, input, clear);
  const table = el("table", "qlmw-eventlog-table");
  const tbody = el("tbody");
  table.append(tbody);
  const scroller = el("div", "qlmw-eventlog-scroll");
  scroller.append(table);
  box.append(head, scroller);
  root.appendChild(box);

  input.value = model.get("filter");
  input.addEventListener("input", () => {
    model.set("filter", input.value);
    model.save_changes();
    update();
  });

  function update() {
    const events = model.get("events") || [];
    const keep = topicFilter(model.get("filter"));
    const shown = events.filter((e) => keep(e.topic));
    title.textContent = `Events (${model.get("pattern")}) · ${shown.length} shown · ${model.get("received")} received`;
    if (document.activeElement !== input && input.value !== model.get("filter")) input.value = model.get("filter");
    tbody.replaceChildren();
    for (let i = shown.length - 1; i >= 0; i--) {
      const e = shown[i];
      const row = el("tr", "qlmw-eventlog-row");
      row.dataset.topic = e.topic;
      row.append(el("td", "qlmw-eventlog-time", clock(e.time)), el("td", "qlmw-eventlog-topic", e.topic),
        el("td", "qlmw-eventlog-summary", e.summary));
      row.title = e.payload;
      row.addEventListener("click", () => {
        const next = row.nextSibling;
        if (next && next.classList.contains("qlmw-eventlog-detail")) { next.remove(); return; }
        const detail = el("tr", "qlmw-eventlog-detail");
        const cell = el("td");
        cell.colSpan = 3;
        cell.append(el("pre", "qlmw-code", e.payload));
        detail.append(cell);
        row.after(detail);
      });
      tbody.append(row);
    }
  }
  const names = ["events", "filter", "received", "pattern"];
  for (const name of names) model.on(`change:${name}`, update);
  update();
  return () => { for (const name of names) model.off(`change:${name}`, update); };
}

export default { render };

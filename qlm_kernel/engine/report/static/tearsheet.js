// QLM tearsheet: inflate plotly.js (when inlined) and the data document, draw the panels, fill the
// trades table page by page. Marks <body data-rendered="1"> when every chart is drawn.
(function () {
  "use strict";

  async function inflate(id) {
    const node = document.getElementById(id);
    const b64 = node.textContent.trim();
    let bytes;
    try {
      bytes = await (await fetch("data:application/octet-stream;base64," + b64)).arrayBuffer();
    } catch (err) {  // some browsers refuse data: fetches from file:// pages
      const bin = atob(b64);
      bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    }
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return await new Response(stream).text();
  }

  function fail(message) {
    document.body.dataset.rendered = "error";
    const box = document.createElement("div");
    box.className = "page-error";
    box.textContent = message;
    document.body.prepend(box);
  }

  // {"$t": delta-coded positions} -> epoch milliseconds; {"$q"} -> values (plotly reads numbers on a date axis as ms)
  function decodeTimes(doc) {
    const t = doc.times, ms = new Float64Array(t.d.length + 1);
    let tick = t.t0;
    ms[0] = tick * t.unit_ms;
    for (let i = 0; i < t.d.length; i++) { tick += t.d[i]; ms[i + 1] = tick * t.unit_ms; }
    function walk(obj) {
      if (Array.isArray(obj)) { for (let i = 0; i < obj.length; i++) obj[i] = walk(obj[i]); return obj; }
      if (obj && typeof obj === "object") {
        if (obj.$t) {
          const out = new Array(obj.$t.length);
          let p = 0;
          for (let i = 0; i < out.length; i++) { p += obj.$t[i]; out[i] = ms[p]; }
          return out;
        }
        if (obj.$q) {  // quantized line values: lo + level * step, levels delta-coded, null = gap
          const out = new Array(obj.$q.length);
          let level = 0;
          for (let i = 0; i < out.length; i++) {
            const d = obj.$q[i];
            if (d === null) { out[i] = null; continue; }
            level += d;
            out[i] = obj.lo + level * obj.step;
          }
          return out;
        }
        for (const k of Object.keys(obj)) obj[k] = walk(obj[k]);
      }
      return obj;
    }
    walk(doc.panels);
  }

  function draw(doc) {
    const config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
    const jobs = [];
    for (const [name, spec] of Object.entries(doc.panels)) {
      const div = document.getElementById("chart-" + name);
      if (!div) continue;
      jobs.push(Plotly.newPlot(div, spec.data, spec.layout, config).then(() => {
        div.dataset.traces = String(div.data.length);
        div.dataset.rendered = "1";
      }));
    }
    return Promise.all(jobs);
  }

  // ---- trades table -------------------------------------------------------------------------
  const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const num = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 6 });
  function when(sec) {
    if (sec === null || sec === undefined) return "";
    const s = new Date(sec * 1000).toISOString();
    return s.endsWith("T00:00:00.000Z") ? s.slice(0, 10) : s.slice(0, 16).replace("T", " ");
  }
  function duration(sec) {
    if (sec < 0) return "open";
    const d = Math.floor(sec / 86400), h = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60);
    return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m`;
  }
  const COLUMNS = [
    ["#", (t, i) => String(i + 1)],
    ["Direction", (t, i) => t.directions[t.direction[i]]],
    ["Entry time", (t, i) => when(t.entry_s[i])],
    ["Exit time", (t, i) => t.open[i] ? "open" : when(t.entry_s[i] + t.held_s[i])],
    ["Held", (t, i) => duration(t.held_s[i])],
    ["Size", (t, i) => num.format(t.size[i])],
    ["Entry price", (t, i) => num.format(t.entry_price[i])],
    ["Exit price", (t, i) => t.exit_price[i] === null ? "" : num.format(t.exit_price[i])],
    ["P&L", (t, i) => t.pnl[i] === null ? "" : money.format(t.pnl[i])],
    ["Return", (t, i) => t.pnl[i] === null ? "" : (100 * t.pnl[i] / (t.size[i] * t.entry_price[i])).toFixed(2) + "%"],
    ["Fees", (t, i) => money.format(t.fees[i])],
    ["Exit reason", (t, i) => t.open[i] ? "open" : t.reasons[t.reason[i]].replace("_", " ")],
  ];

  // entry ticks are delta-coded, held is in ticks: both to epoch seconds
  function tradeTimes(t) {
    t.entry_s = new Array(t.n);
    t.held_s = new Array(t.n);
    let tick = 0;
    for (let i = 0; i < t.n; i++) {
      tick += t.entry[i];
      t.entry_s[i] = tick * t.unit_s;
      t.held_s[i] = t.held[i] < 0 ? -1 : t.held[i] * t.unit_s;
    }
  }

  function tradesTable(t) {
    const table = document.getElementById("qlm-trades");
    const controls = document.querySelector("#panel-trades .trades-controls");
    if (!table) return;
    tradeTimes(t);
    const head = document.createElement("tr");
    for (const [name] of COLUMNS) { const th = document.createElement("th"); th.textContent = name; head.append(th); }
    table.tHead.append(head);
    let size = 50, page = 0;
    const pages = () => Math.max(1, Math.ceil(t.n / size));
    const info = document.createElement("span");
    const mk = (label, fn, cls) => {
      const b = document.createElement("button"); b.textContent = label; b.className = cls; b.onclick = fn; return b;
    };
    const goto = document.createElement("input");
    goto.type = "number"; goto.min = 1; goto.max = t.n; goto.placeholder = "trade #"; goto.className = "goto";
    goto.onchange = () => { const k = Number(goto.value) - 1; if (k >= 0 && k < t.n) { page = Math.floor(k / size); render(k); } };
    const sizes = document.createElement("select");
    for (const s of [25, 50, 100, 500]) { const o = document.createElement("option"); o.value = s; o.textContent = `${s} / page`; if (s === size) o.selected = true; sizes.append(o); }
    sizes.onchange = () => { size = Number(sizes.value); page = 0; render(); };
    controls.append(mk("« first", () => { page = 0; render(); }, "first"), mk("‹ prev", () => { page = Math.max(0, page - 1); render(); }, "prev"),
      info, mk("next ›", () => { page = Math.min(pages() - 1, page + 1); render(); }, "next"),
      mk("last »", () => { page = pages() - 1; render(); }, "last"), sizes, goto);
    function render(mark) {
      const body = table.tBodies[0];
      body.replaceChildren();
      const start = page * size, stop = Math.min(t.n, start + size);
      for (let i = start; i < stop; i++) {
        const tr = document.createElement("tr");
        tr.dataset.trade = String(i + 1);
        if (t.pnl[i] !== null) tr.className = t.pnl[i] >= 0 ? "win" : "loss";
        if (i === mark) tr.classList.add("marked");
        for (const [, cell] of COLUMNS) { const td = document.createElement("td"); td.textContent = cell(t, i); tr.append(td); }
        body.append(tr);
      }
      info.textContent = t.n ? `trades ${start + 1}–${stop} of ${t.n.toLocaleString("en-US")} · page ${page + 1} of ${pages()}` : "no trades";
      table.dataset.page = String(page + 1);
    }
    render();
  }

  async function main() {
    try {
      if (!window.Plotly) {
        const code = await inflate("qlm-plotlyjs").catch(() => null);
        if (code === null) {
          fail("plotly.js did not load: offline with a plotlyjs='cdn' report, or a browser without DecompressionStream. "
               + "Save the report with plotlyjs='inline' or open it in a current browser.");
        } else {
          const s = document.createElement("script");
          s.textContent = code;
          document.head.append(s);
        }
      }
      const doc = JSON.parse(await inflate("qlm-data"));
      decodeTimes(doc);
      tradesTable(doc.trades);
      if (window.Plotly) {
        await draw(doc);
        if (document.body.dataset.rendered !== "error") document.body.dataset.rendered = "1";
      }
    } catch (err) {
      fail("The report could not be drawn: " + err);
      throw err;
    }
  }
  main();
})();

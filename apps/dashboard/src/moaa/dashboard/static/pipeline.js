// The pipeline page: polls /api/pipeline (the dashboard scrapes every stage's /metrics).
"use strict";
(() => {
  const cell = (text, cls) => { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; };
  const fmtInt = (x) => (x === null || x === undefined ? "–" : Math.round(x).toLocaleString("en-US"));
  async function load() {
    const p = await moaa.getJSON("/api/pipeline");
    moaa.setText("replay-hour", p.replay_hour ? moaa.hour(p.replay_hour) : "–");
    moaa.setText("dlq", fmtInt(p.dlq_records));
    moaa.setText("lag-total", p.lag ? fmtInt(p.lag.total) : "–");
    moaa.setText("forecast-lag", fmtInt(p.forecast_lag_hours));
    const rows = p.components.map((c) => {
      const tr = document.createElement("tr");
      tr.dataset.component = c.name;
      tr.append(cell(c.name, "text"));
      const status = cell("", "text");
      status.innerHTML = `<span class="dot ${c.up ? "up" : "down"}"></span> `;
      status.append(c.up ? "up" : "down");
      if (!c.up && c.error) status.title = c.error;
      tr.append(status, cell(moaa.num(c.records_per_s, 1)), cell(fmtInt(c.records_total)), cell(c.url, "text muted"));
      return tr;
    });
    document.querySelector("#components tbody").replaceChildren(...rows);
    const lag = p.lag || { partitions: [] };
    moaa.setText("lag-info", lag.error ? `Kafka unreachable: ${lag.error}` : `group ${lag.group || "–"}`);
    document.querySelector("#lag tbody").replaceChildren(...lag.partitions.map((r) => {
      const tr = document.createElement("tr");
      tr.append(cell(r.topic, "text"), cell(r.partition), cell(r.committed ?? "none"), cell(r.high), cell(r.lag));
      return tr;
    }));
    const errors = p.errors.map((e) => { const li = document.createElement("li"); li.textContent = `${moaa.time(e.time)} · ${e.component} · ${e.message}`; return li; });
    if (!errors.length) { const li = document.createElement("li"); li.className = "muted"; li.textContent = "none seen since the dashboard started"; errors.push(li); }
    document.getElementById("errors").replaceChildren(...errors);
    moaa.setText("refreshed", `updated ${new Date().toISOString().slice(11, 19)} UTC`);
  }
  const tick = () => load().catch((e) => moaa.setText("refreshed", `dashboard unreachable (${e.message})`));
  tick();
  setInterval(tick, 5000);
})();

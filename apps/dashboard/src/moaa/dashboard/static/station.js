// The station page: 48 h of hourly means with a min–max band, the latest forecast, skill by lead.
"use strict";
(() => {
  const stationId = decodeURIComponent(window.location.pathname.split("/").filter(Boolean).pop());
  const BASELINES = ["last_value", "same_hour_yesterday", "climatology"];
  let history = null, skillChart = null;

  function drawHistory(page) {
    const byHour = new Map();
    const slot = (iso) => { if (!byHour.has(iso)) byHour.set(iso, {}); return byHour.get(iso); };
    for (const h of page.hours) Object.assign(slot(h.hour), { min: h.min_c, max: h.max_c, mean: h.mean_c });
    const fc = page.forecast;
    if (fc) for (const p of fc.points) slot(p.target_hour).forecast = p.value;
    const keys = [...byHour.keys()].sort();
    const col = (k) => keys.map((h) => byHour.get(h)[k] ?? null);
    const data = {
      labels: keys.map(moaa.shortHour),
      datasets: [
        { label: "min", data: col("min"), borderWidth: 0, pointRadius: 0, fill: false, borderColor: "rgba(31,111,235,.25)" },
        { label: "min–max", data: col("max"), borderWidth: 0, pointRadius: 0, fill: "-1", backgroundColor: "rgba(31,111,235,.18)", borderColor: "rgba(31,111,235,.25)" },
        { label: "mean", data: col("mean"), borderColor: "#1f6feb", backgroundColor: "#1f6feb", pointRadius: 1.5, borderWidth: 2 },
        { label: fc ? `forecast (model v${fc.model_version})` : "forecast", data: col("forecast"), borderColor: "#e36209", backgroundColor: "#e36209", borderDash: [6, 4], pointRadius: 1.5, borderWidth: 2 },
      ],
    };
    const options = {
      animation: false, maintainAspectRatio: false, spanGaps: true,
      interaction: { mode: "index", intersect: false },
      scales: { y: { title: { display: true, text: "°C" } }, x: { ticks: { maxTicksLimit: 8, maxRotation: 0 } } },
      plugins: { legend: { labels: { filter: (item) => item.text !== "min" } } },
    };
    if (history) { history.data = data; history.update(); } else {
      history = new Chart(document.getElementById("history-chart"), { type: "line", data, options });
    }
  }

  function drawForecastInfo(fc) {
    const el = document.getElementById("forecast-info");
    if (!fc) {
      el.className = "notice";
      el.textContent = "No forecast yet for this station.";
      return;
    }
    el.className = "muted";
    el.innerHTML = "";
    const parts = [["Forecast issued ", moaa.hour(fc.issued_at), "forecast-issued"], [" · model version ", String(fc.model_version ?? "–"), "forecast-model"], [" · ", `${fc.points.length} hourly points`, "forecast-points"]];
    for (const [lead, text, id] of parts) {
      el.append(lead);
      const b = document.createElement("b");
      b.id = id;
      b.textContent = text;
      el.append(b);
    }
  }

  function drawSkill(skill) {
    document.getElementById("skill-none").hidden = !!skill;
    document.getElementById("skill-box").hidden = !skill;
    if (!skill) return;
    const o = skill.overall || {};
    moaa.setText("skill-info", `Model v${skill.model_version ?? "–"}, updated ${moaa.hour(skill.updated_hour)}; over all leads: skill ${moaa.num(o.skill, 2)} (n = ${o.n ?? "–"}, model MAE ${moaa.num((o.mae || {}).model, 2)} °C).`);
    const leads = [...skill.leads].sort((a, b) => a.lead - b.lead);
    const rows = leads.map((l) => {
      const tr = document.createElement("tr");
      tr.dataset.lead = l.lead;
      for (const text of [l.lead, l.n ?? "–", moaa.num(l.mae.model, 2), ...BASELINES.map((b) => moaa.num(l.mae[b], 2)), moaa.num(l.skill, 2)]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      return tr;
    });
    document.querySelector("#skill-table tbody").replaceChildren(...rows);
    const colours = { model: "#e36209", last_value: "#6e7781", same_hour_yesterday: "#8250df", climatology: "#1a7f37" };
    const data = {
      labels: leads.map((l) => `+${l.lead} h`),
      datasets: ["model", ...BASELINES].map((k) => ({ label: k.replaceAll("_", " "), data: leads.map((l) => l.mae[k] ?? null), backgroundColor: colours[k] })),
    };
    const options = { animation: false, maintainAspectRatio: false, scales: { y: { title: { display: true, text: "MAE °C" }, beginAtZero: true } } };
    if (skillChart) { skillChart.data = data; skillChart.update(); } else {
      skillChart = new Chart(document.getElementById("skill-chart"), { type: "bar", data, options });
    }
  }

  async function load() {
    const id = encodeURIComponent(stationId);
    // The figures come from the site's memory; the forecast and the skill are two reads of
    // MongoDB, asked for at the same time and drawn when they arrive.
    const later = moaa.getJSON(`/api/stations/${id}/forecast`).catch((e) => { console.error(e); return null; });
    const page = await moaa.getJSON(`/api/stations/${id}?forecast=false`);
    moaa.setText("station-id", stationId);
    document.getElementById("station-missing").hidden = !!page;
    if (!page) { await later; return; }
    document.title = `MOAA — ${page.name || stationId}`;
    moaa.setText("station-name", page.name || stationId);
    const where = [`${moaa.num(page.latitude, 3)}°, ${moaa.num(page.longitude, 3)}°`, `${moaa.num(page.elevation_m, 0)} m`];
    if (page.call_sign) where.push(`call sign ${page.call_sign}`);
    if (page.country) where.push(`country ${page.country}`);
    moaa.setText("station-where", where.join(" · "));
    const l = page.latest || {};
    moaa.setText("latest-hour", moaa.hour(l.hour));
    moaa.setText("latest-min", moaa.num(l.min_c, 1));
    moaa.setText("latest-mean", moaa.num(l.mean_c, 2));
    moaa.setText("latest-max", moaa.num(l.max_c, 1));
    moaa.setText("latest-count", l.count ?? "–");
    document.body.dataset.current = page.hour || "";
    drawHistory(page);
    if (!document.body.dataset.shownMs) document.body.dataset.shownMs = String(Math.round(performance.now()));
    const extra = await later;
    if (extra) {
      Object.assign(page, { forecast: extra.forecast, skill: extra.skill });
      drawHistory(page);
      drawForecastInfo(page.forecast);
      drawSkill(page.skill);
    }
    document.body.dataset.loaded = l.hour || "none";
    if (!document.body.dataset.loadedMs) document.body.dataset.loadedMs = String(Math.round(performance.now()));
  }
  let loading = null;
  const reload = () => { loading = (loading || Promise.resolve()).then(load).catch(console.error); };
  reload();
  moaa.live(() => reload(), () => document.body.dataset.current || null, () => loading);
})();

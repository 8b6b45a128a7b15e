// The map and live page: the all-stations world view of the last 48 h, the stations on a
// canvas world map (world-atlas outline drawn with d3-geo), and a paged, sortable table.
// The station list (/api/stations) is fetched once per version and cached by the browser;
// each live update fetches only the hour's figures (/api/now, columns) and repaints.
"use strict";
(() => {
  const WIDTH = 960, HEIGHT = 500, PAGE = 50, CELL = 8;
  const projection = d3.geoNaturalEarth1().fitSize([WIDTH, HEIGHT], { type: "Sphere" });
  const box = document.getElementById("map");
  const canvas = document.getElementById("map-canvas");
  const ctx = canvas.getContext("2d");
  const tip = document.getElementById("map-tip");
  let land = null, background = null;
  let cat = null; // the station list: columns + x, y (map units) + index (id → place)
  let now = null; // this hour: at[place] = position in the hour's columns, -1 none, -2 idle
  let grid = new Map(), radius = 4, paints = 0, hovered = -1;

  // --- the station list and the hour ---------------------------------------------------
  async function loadCatalogue(version) {
    if (cat && cat.version === version) return;
    const c = await moaa.getJSON(`/api/stations?v=${version}`);
    const n = c.station_id.length;
    c.x = new Float32Array(n).fill(NaN);
    c.y = new Float32Array(n).fill(NaN);
    c.index = new Map();
    for (let i = 0; i < n; i++) {
      c.index.set(c.station_id[i], i);
      if (c.latitude[i] === null || c.longitude[i] === null) continue;
      const p = projection([c.longitude[i], c.latitude[i]]);
      if (p) { c.x[i] = p[0]; c.y[i] = p[1]; }
    }
    cat = c;
    fillCountries();
  }

  function takeHour(n) {
    const at = new Int32Array(cat.station_id.length).fill(-1);
    n.station_id.forEach((id, k) => { const i = cat.index.get(id); if (i !== undefined) at[i] = k; });
    for (const id of n.idle) { const i = cat.index.get(id); if (i !== undefined) at[i] = -2; }
    now = { ...n, at };
    setRadius();
    buildGrid();
  }

  // Dots of a fixed size on screen (CSS px), whatever the map's width: small when many.
  function setRadius() {
    if (!now) return;
    const px = now.station_id.length + now.idle.length > 500 ? 2.2 : 5;
    radius = (px * WIDTH) / Math.max(canvas.clientWidth, 1);
  }

  const figure = (i, key) => (now.at[i] >= 0 ? now[key][now.at[i]] : null);

  // --- the canvas map --------------------------------------------------------------------
  function resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = box.clientWidth - 2 * parseFloat(getComputedStyle(box).paddingLeft || 0);
    canvas.style.width = `${w}px`;
    canvas.style.height = `${(w * HEIGHT) / WIDTH}px`;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round((w * HEIGHT * dpr) / WIDTH);
    background = document.createElement("canvas");
    background.width = canvas.width;
    background.height = canvas.height;
    const b = background.getContext("2d");
    b.scale(canvas.width / WIDTH, canvas.height / HEIGHT);
    const path = d3.geoPath(projection, b);
    b.beginPath(); path({ type: "Sphere" }); b.fillStyle = "#dbe9f6"; b.fill();
    if (land) {
      b.beginPath(); path(land); b.fillStyle = "#eef0ea"; b.fill();
      b.lineWidth = 0.4; b.strokeStyle = "#b9bdb0"; b.stroke();
    }
    setRadius();
    paint();
  }

  function dot(i, fill, r) {
    ctx.beginPath();
    ctx.arc(cat.x[i], cat.y[i], r, 0, 2 * Math.PI);
    ctx.fillStyle = fill;
    ctx.fill();
  }

  function paint() {
    if (!background) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(background, 0, 0);
    if (!cat || !now) return;
    ctx.setTransform(canvas.width / WIDTH, 0, 0, canvas.height / HEIGHT, 0, 0);
    ctx.lineWidth = 0.35;
    ctx.strokeStyle = "rgba(30,30,30,.55)";
    const n = cat.station_id.length;
    for (let i = 0; i < n; i++) if (now.at[i] === -2 && !Number.isNaN(cat.x[i])) dot(i, "#9aa0a6", radius);
    for (let i = 0; i < n; i++) {
      if (now.at[i] < 0 || Number.isNaN(cat.x[i])) continue;
      dot(i, moaa.colour(figure(i, "mean_c")), radius);
      if (now.station_id.length <= 500) ctx.stroke();
    }
    if (hovered >= 0) { dot(hovered, moaa.colour(figure(hovered, "mean_c")), radius * 2); ctx.lineWidth = 1; ctx.stroke(); }
    paints += 1;
    document.body.dataset.paints = String(paints);
  }

  function buildGrid() {
    grid = new Map();
    for (let i = 0; i < cat.station_id.length; i++) {
      if (now.at[i] === -1 || Number.isNaN(cat.x[i])) continue;
      const key = `${Math.floor(cat.x[i] / CELL)},${Math.floor(cat.y[i] / CELL)}`;
      if (!grid.has(key)) grid.set(key, []);
      grid.get(key).push(i);
    }
  }

  // The station under a point of the canvas (CSS px), or -1.
  function stationAt(px, py) {
    const k = WIDTH / canvas.clientWidth;
    const x = px * k, y = py * k, reach = Math.max(radius + 1.5, 5 * k);
    let best = -1, bestD = reach * reach;
    const cx = Math.floor(x / CELL), cy = Math.floor(y / CELL), span = Math.ceil(reach / CELL);
    for (let gx = cx - span; gx <= cx + span; gx++) {
      for (let gy = cy - span; gy <= cy + span; gy++) {
        for (const i of grid.get(`${gx},${gy}`) || []) {
          const d = (cat.x[i] - x) ** 2 + (cat.y[i] - y) ** 2;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  function showTip(i, px, py) {
    if (i < 0) { tip.hidden = true; return; }
    const id = cat.station_id[i];
    const lines = [
      [cat.name[i] || id, "b"],
      [[id, cat.call_sign[i], cat.country[i]].filter(Boolean).join(" · "), "span"],
      now.at[i] >= 0
        ? [`min ${moaa.num(figure(i, "min_c"), 1)} · mean ${moaa.num(figure(i, "mean_c"), 2)} · max ${moaa.num(figure(i, "max_c"), 1)} °C · ${figure(i, "count")} readings`, "span"]
        : ["no reading this hour", "span"],
    ];
    tip.replaceChildren(...lines.map(([text, tag]) => { const el = document.createElement(tag); el.textContent = text; return el; }));
    tip.dataset.station = id;
    tip.hidden = false;
    const left = Math.min(px + 12, canvas.clientWidth - tip.offsetWidth - 4);
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${py + 14}px`;
  }

  canvas.addEventListener("mousemove", (e) => {
    if (!cat || !now) return;
    const i = stationAt(e.offsetX, e.offsetY);
    canvas.style.cursor = i >= 0 ? "pointer" : "default";
    if (i !== hovered) { hovered = i; paint(); }
    showTip(i, e.offsetX, e.offsetY);
  });
  canvas.addEventListener("mouseleave", () => { hovered = -1; tip.hidden = true; paint(); });
  canvas.addEventListener("click", (e) => {
    if (!cat || !now) return;
    const i = stationAt(e.offsetX, e.offsetY);
    if (i >= 0) window.location.href = `/station/${encodeURIComponent(cat.station_id[i])}`;
  });

  // --- the table: filter, sort, pages ----------------------------------------------------
  const table = { key: "id", dir: 1, page: 0, rows: [] };
  const filterBox = document.getElementById("table-filter");
  const countryBox = document.getElementById("table-country");

  function fillCountries() {
    const chosen = countryBox.value;
    const codes = [...new Set(cat.country.filter(Boolean))].sort();
    const options = [new Option("every country", ""), ...codes.map((c) => new Option(c, c))];
    countryBox.replaceChildren(...options);
    countryBox.value = codes.includes(chosen) ? chosen : "";
  }

  function tableRows() {
    const text = filterBox.value.trim().toLowerCase();
    const country = countryBox.value;
    const rows = [];
    for (let i = 0; i < cat.station_id.length; i++) {
      if (now.at[i] === -1) continue;
      if (country && cat.country[i] !== country) continue;
      const id = cat.station_id[i], name = cat.name[i] || "";
      if (text && !id.includes(text) && !name.toLowerCase().includes(text) && !cat.call_sign[i].toLowerCase().includes(text)) continue;
      rows.push({ i, id, name, country: cat.country[i], min: figure(i, "min_c"), mean: figure(i, "mean_c"), max: figure(i, "max_c"), count: figure(i, "count") });
    }
    const { key, dir } = table;
    rows.sort((a, b) => {
      const x = a[key], y = b[key];
      if (x === y) return a.id < b.id ? -1 : 1;
      if (x === null || x === "") return 1; // no value: last either way
      if (y === null || y === "") return -1;
      return (x < y ? -1 : 1) * dir;
    });
    return rows;
  }

  function cell(text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; }

  function drawTable() {
    if (!cat || !now) return;
    table.rows = tableRows();
    const pages = Math.max(1, Math.ceil(table.rows.length / PAGE));
    table.page = Math.min(table.page, pages - 1);
    const shown = table.rows.slice(table.page * PAGE, (table.page + 1) * PAGE);
    document.querySelector("#stations-table tbody").replaceChildren(...shown.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.station = r.id;
      const first = cell("", "text");
      const a = document.createElement("a");
      a.href = `/station/${encodeURIComponent(r.id)}`;
      a.textContent = r.id;
      first.append(a);
      tr.append(first, cell(r.name, "text"), cell(r.country, "text"), cell(moaa.num(r.min, 1)), cell(moaa.num(r.mean, 2)), cell(moaa.num(r.max, 1)), cell(r.count ?? "–"));
      return tr;
    }));
    moaa.setText("table-page", `${table.page + 1} / ${pages}`);
    moaa.setText("table-info", `${table.rows.length.toLocaleString("en-US")} stations`);
    document.getElementById("table-prev").disabled = table.page === 0;
    document.getElementById("table-next").disabled = table.page >= pages - 1;
  }

  document.querySelectorAll("#stations-table th[data-key]").forEach((th) => {
    th.querySelector("button").addEventListener("click", () => {
      const key = th.dataset.key;
      table.dir = table.key === key ? -table.dir : (["id", "name", "country"].includes(key) ? 1 : -1);
      table.key = key;
      table.page = 0;
      document.querySelectorAll("#stations-table th[data-key]").forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", table.dir > 0 ? "ascending" : "descending");
      drawTable();
    });
  });
  let filterTimer = null;
  filterBox.addEventListener("input", () => { clearTimeout(filterTimer); filterTimer = setTimeout(() => { table.page = 0; drawTable(); }, 100); });
  countryBox.addEventListener("change", () => { table.page = 0; drawTable(); });
  document.getElementById("table-prev").addEventListener("click", () => { table.page -= 1; drawTable(); });
  document.getElementById("table-next").addEventListener("click", () => { table.page += 1; drawTable(); });

  // --- the world view: all stations over the last 48 hours --------------------------------
  let worldChart = null;
  async function drawWorld() {
    const hours = await moaa.getJSON("/api/summary?hours=48");
    const col = (k) => hours.map((h) => h[k] ?? null);
    const data = {
      labels: hours.map((h) => moaa.shortHour(h.hour)),
      datasets: [
        { label: "min", data: col("min_c"), borderColor: "#2f6fb0", backgroundColor: "#2f6fb0", pointRadius: 0, borderWidth: 1.5, yAxisID: "y" },
        { label: "mean", data: col("mean_c"), borderColor: "#1d2330", backgroundColor: "#1d2330", pointRadius: 0, borderWidth: 2, yAxisID: "y" },
        { label: "max", data: col("max_c"), borderColor: "#c4302b", backgroundColor: "#c4302b", pointRadius: 0, borderWidth: 1.5, yAxisID: "y" },
        { label: "reporting stations", data: col("stations"), type: "bar", backgroundColor: "rgba(252,163,17,.35)", yAxisID: "stations" },
      ],
    };
    const options = {
      animation: false, maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
      scales: {
        x: { ticks: { maxTicksLimit: 8, maxRotation: 0 } },
        y: { position: "left", title: { display: true, text: "°C" } },
        stations: { position: "right", beginAtZero: true, ticks: { precision: 0 }, grid: { drawOnChartArea: false }, title: { display: true, text: "stations" } },
      },
    };
    if (worldChart) { worldChart.data = data; worldChart.update(); } else {
      worldChart = new Chart(document.getElementById("world-chart"), { type: "line", data, options });
    }
    document.body.dataset.worldHours = String(hours.length);
  }

  // --- live ------------------------------------------------------------------------------
  function drawSummary(n) {
    const s = n.summary || {};
    moaa.setText("hour", moaa.hour(n.hour));
    moaa.setText("summary-min", moaa.num(s.min_c, 1));
    moaa.setText("summary-mean", moaa.num(s.mean_c, 2));
    moaa.setText("summary-max", moaa.num(s.max_c, 1));
    moaa.setText("summary-stations", s.stations ?? "–");
    moaa.setText("summary-count", s.count ?? "–");
    document.getElementById("empty").hidden = n.hour !== null;
  }

  async function load() {
    const n = await moaa.getJSON("/api/now");
    await loadCatalogue(n.stations_version);
    takeHour(n);
    drawSummary(n);
    paint();
    drawTable();
    if (!document.body.dataset.interactive) {
      performance.mark("map-interactive");
      document.body.dataset.interactive = String(Math.round(performance.now()));
    }
    document.body.dataset.hour = n.hour || "";
    await drawWorld();
  }
  let loading = null;
  const reload = () => { loading = (loading || Promise.resolve()).then(load).catch(console.error); };

  // For the browser tests and the benchmark: where a station is drawn (CSS px in the canvas).
  window.moaaMap = {
    point(id) {
      const i = cat ? cat.index.get(id) : undefined;
      if (i === undefined || Number.isNaN(cat.x[i])) return null;
      const k = canvas.clientWidth / WIDTH;
      return { x: cat.x[i] * k, y: cat.y[i] * k };
    },
  };

  window.addEventListener("resize", () => { clearTimeout(resize.timer); resize.timer = setTimeout(resize, 150); });
  resize();
  moaa.getJSON("/static/vendor/countries-110m.json").then((world) => {
    land = topojson.feature(world, world.objects.countries);
    resize();
  }).catch(console.error);
  reload();
  moaa.live(() => reload(), () => document.body.dataset.hour || null, () => loading);
})();

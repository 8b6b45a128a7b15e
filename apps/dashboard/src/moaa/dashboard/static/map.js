// The map and live page: world outline (world-atlas, drawn with d3-geo) + stations + table.
"use strict";
(() => {
  const WIDTH = 960, HEIGHT = 500;
  const SVG = "http://www.w3.org/2000/svg";
  const projection = d3.geoNaturalEarth1().fitSize([WIDTH, HEIGHT], { type: "Sphere" });
  const path = d3.geoPath(projection);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  const stationsLayer = document.createElementNS(SVG, "g");
  document.getElementById("map").appendChild(svg);

  function addPath(d, cls) {
    const el = document.createElementNS(SVG, "path");
    el.setAttribute("d", d);
    el.setAttribute("class", cls);
    svg.appendChild(el);
  }

  async function drawWorld() {
    addPath(path({ type: "Sphere" }), "sphere");
    const world = await moaa.getJSON("/static/vendor/countries-110m.json");
    addPath(path(topojson.feature(world, world.objects.countries)), "land");
    svg.appendChild(stationsLayer);
  }

  function drawStations(stations) {
    stationsLayer.replaceChildren();
    // Stations with a reading on top of the grey ones.
    const sorted = [...stations].sort((a, b) => (a.mean_c === null) - (b.mean_c === null)).reverse();
    for (const s of sorted) {
      if (s.latitude === null || s.longitude === null) continue;
      const [x, y] = projection([s.longitude, s.latitude]);
      const c = document.createElementNS(SVG, "circle");
      c.setAttribute("cx", x.toFixed(1));
      c.setAttribute("cy", y.toFixed(1));
      c.setAttribute("r", stations.length > 500 ? 2.5 : 5);
      c.setAttribute("class", "station");
      c.setAttribute("fill", moaa.colour(s.mean_c));
      c.dataset.station = s.station_id;
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${s.name || s.station_id}: mean ${moaa.num(s.mean_c, 2)} °C`;
      c.appendChild(title);
      c.addEventListener("click", () => { window.location.href = `/station/${encodeURIComponent(s.station_id)}`; });
      stationsLayer.appendChild(c);
    }
  }

  function drawTable(stations) {
    const body = document.querySelector("#stations-table tbody");
    const rows = stations.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.station = s.station_id;
      const cells = [s.station_id, s.name || "", moaa.num(s.min_c, 1), moaa.num(s.mean_c, 2), moaa.num(s.max_c, 1), s.count ?? "–"];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        if (i === 0) {
          const a = document.createElement("a");
          a.href = `/station/${encodeURIComponent(s.station_id)}`;
          a.textContent = text;
          td.appendChild(a);
        } else {
          td.textContent = text;
        }
        if (i < 2) td.className = "text";
        tr.appendChild(td);
      });
      return tr;
    });
    body.replaceChildren(...rows);
  }

  function drawSummary(now) {
    const s = now.summary || {};
    moaa.setText("hour", moaa.hour(now.hour));
    moaa.setText("summary-min", moaa.num(s.min_c, 1));
    moaa.setText("summary-mean", moaa.num(s.mean_c, 2));
    moaa.setText("summary-max", moaa.num(s.max_c, 1));
    moaa.setText("summary-stations", s.stations ?? "–");
    moaa.setText("summary-count", s.count ?? "–");
    document.getElementById("empty").hidden = now.hour !== null;
  }

  let loading = null;
  async function load() {
    const now = await moaa.getJSON("/api/now");
    drawSummary(now);
    drawStations(now.stations);
    drawTable(now.stations);
    document.body.dataset.hour = now.hour || "";
  }
  const reload = () => { loading = (loading || Promise.resolve()).then(load).catch(console.error); };

  drawWorld().then(() => {
    reload();
    moaa.live(() => reload());
  }).catch(console.error);
})();

// Shared helpers of the MOAA pages (no framework; the libraries come from /static/vendor).
"use strict";
const moaa = (() => {
  const num = (x, digits) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(digits));
  // Every hour the API sends is "YYYY-MM-DDTHH:MM:SSZ" (moaa.common.hours); only these read it.
  // "2013-01-02T23:00:00Z" → "2013-01-02 23:00 UTC"
  const hour = (iso) => (iso ? iso.replace("T", " ").replace(/:00(\.\d+)?(Z|\+00:00)$/, "") + " UTC" : "–");
  const shortHour = (iso) => (iso ? iso.slice(5, 16).replace("T", " ") : "");
  // A time to the second: "2013-01-02T23:04:05.123Z" → "2013-01-02 23:04:05 UTC"
  const time = (iso) => (iso ? `${iso.slice(0, 19).replace("T", " ")} UTC` : "–");
  async function getJSON(url) {
    const resp = await fetch(url, { headers: { Accept: "application/json" } });
    if (resp.status === 404) return null;
    if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
    return resp.json();
  }
  // Diverging colour of a temperature (°C), blue → white → red, clamped to −30…+40.
  const STOPS = [[-30, [49, 54, 149]], [-10, [116, 173, 209]], [5, [247, 247, 247]], [20, [244, 109, 67]], [40, [165, 0, 38]]];
  function colour(t) {
    if (t === null || t === undefined) return "#9aa0a6";
    if (t <= STOPS[0][0]) return `rgb(${STOPS[0][1]})`;
    for (let i = 1; i < STOPS.length; i++) {
      const [t1, c1] = STOPS[i];
      const [t0, c0] = STOPS[i - 1];
      if (t <= t1) {
        const f = (t - t0) / (t1 - t0);
        return `rgb(${c0.map((c, k) => Math.round(c + f * (c1[k] - c))).join(",")})`;
      }
    }
    return `rgb(${STOPS[STOPS.length - 1][1]})`;
  }
  const setText = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = text; };
  // Live updates: server-sent events from /api/events; `onHour` gets {hour, summary} on
  // every change. The stream's first event (sent on connecting) usually carries the hour the
  // page is loading by itself: once `settled()` (that load) is done, it counts only if its
  // hour differs from `loadedHour()`.
  function live(onHour, loadedHour, settled) {
    const badge = document.getElementById("live");
    const events = new EventSource("/api/events");
    let first = true;
    events.addEventListener("hour", (e) => {
      const data = JSON.parse(e.data);
      if (!first) { onHour(data); return; }
      first = false;
      Promise.resolve(settled()).then(() => { if (data.hour !== loadedHour()) onHour(data); });
    });
    events.onopen = () => { if (badge) badge.innerHTML = '<span class="dot up"></span> live'; };
    events.onerror = () => { if (badge) badge.innerHTML = '<span class="dot down"></span> reconnecting'; };
    return events;
  }
  // The header's search box: /api/search as you type; arrows, Enter and Escape work.
  function searchBox() {
    const input = document.getElementById("search");
    const list = document.getElementById("search-results");
    if (!input || !list) return;
    let hits = [], active = -1, asked = 0, timer = null;
    const go = (hit) => { window.location.href = `/station/${encodeURIComponent(hit.station_id)}`; };
    const close = () => { list.hidden = true; input.setAttribute("aria-expanded", "false"); input.removeAttribute("aria-activedescendant"); active = -1; };
    function show() {
      list.replaceChildren(...hits.map((h, i) => {
        const li = document.createElement("li");
        li.id = `search-hit-${i}`;
        li.setAttribute("role", "option");
        li.dataset.station = h.station_id;
        const name = document.createElement("span");
        name.textContent = h.name || h.station_id;
        const more = document.createElement("span");
        more.className = "muted";
        more.textContent = [h.station_id, h.call_sign, h.country].filter(Boolean).join(" · ");
        li.append(name, more);
        li.addEventListener("mousedown", (e) => { e.preventDefault(); go(h); });
        return li;
      }));
      if (!hits.length) {
        const li = document.createElement("li");
        li.className = "muted";
        li.textContent = "no station matches";
        list.append(li);
      }
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      mark(-1);
    }
    function mark(i) {
      active = i;
      [...list.querySelectorAll("li[role=option]")].forEach((li, k) => li.setAttribute("aria-selected", String(k === i)));
      if (i >= 0) input.setAttribute("aria-activedescendant", `search-hit-${i}`); else input.removeAttribute("aria-activedescendant");
    }
    async function ask() {
      const q = input.value.trim();
      const mine = ++asked;
      if (!q) { hits = []; close(); return; }
      const found = await getJSON(`/api/search?limit=10&q=${encodeURIComponent(q)}`);
      if (mine !== asked) return; // a newer query is on its way
      hits = found || [];
      show();
    }
    input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => ask().catch(console.error), 120); });
    input.addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown" && hits.length) { e.preventDefault(); if (list.hidden) show(); mark((active + 1) % hits.length); }
      else if (e.key === "ArrowUp" && hits.length) { e.preventDefault(); mark(active <= 0 ? hits.length - 1 : active - 1); }
      else if (e.key === "Enter" && hits.length) { e.preventDefault(); go(hits[Math.max(active, 0)]); }
      else if (e.key === "Escape") { close(); }
    });
    input.addEventListener("blur", () => setTimeout(close, 150));
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", searchBox); else searchBox();
  return { num, hour, shortHour, time, getJSON, colour, setText, live };
})();

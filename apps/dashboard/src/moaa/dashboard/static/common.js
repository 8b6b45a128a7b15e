// Shared helpers of the MOAA pages (no framework; the libraries come from /static/vendor).
"use strict";
const moaa = (() => {
  const num = (x, digits) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(digits));
  // "2013-01-02T23:00:00Z" → "2013-01-02 23:00 UTC"
  const hour = (iso) => (iso ? iso.replace("T", " ").replace(/:00(\.\d+)?(Z|\+00:00)$/, "") + " UTC" : "–");
  const shortHour = (iso) => (iso ? iso.slice(5, 16).replace("T", " ") : "");
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
  // Live updates: server-sent events from /api/events; `onHour` gets {hour, summary}.
  function live(onHour) {
    const badge = document.getElementById("live");
    const events = new EventSource("/api/events");
    events.addEventListener("hour", (e) => onHour(JSON.parse(e.data)));
    events.onopen = () => { if (badge) badge.innerHTML = '<span class="dot up"></span> live'; };
    events.onerror = () => { if (badge) badge.innerHTML = '<span class="dot down"></span> reconnecting'; };
    return events;
  }
  return { num, hour, shortHour, getJSON, colour, setText, live };
})();

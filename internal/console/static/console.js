// fluxo console: what the core's and the edge's pages share. No library,
// no build step; every request goes to the node that served the page.
"use strict";

const fluxo = (() => {
  // getJSON fetches a JSON endpoint of this node. It resolves to null when
  // the endpoint does not exist (404: an API this node does not serve yet)
  // and rejects on any other failure.
  async function getJSON(path) {
    const resp = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (resp.status === 404) return null;
    if (!resp.ok) throw new Error(path + ": HTTP " + resp.status);
    return resp.json();
  }

  // el builds an element: el("td", {class: "num"}, "12").
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // table fills the section's table: columns [{title, num}], rows of
  // {cells: [...], class}; empty shows a line saying so.
  function table(id, columns, rows, empty) {
    const host = document.getElementById(id);
    const head = el("tr", {}, columns.map(c => el("th", { class: c.num ? "num" : "" }, c.title)));
    const body = rows.map(r => el("tr", { class: r.class || "", "data-key": r.key },
      r.cells.map((c, i) => el("td", { class: columns[i] && columns[i].num ? "num" : "" }, c))));
    if (rows.length === 0) {
      body.push(el("tr", {}, el("td", { class: "empty", colSpan: columns.length }, empty || "none")));
    }
    host.replaceChildren(el("thead", {}, head), el("tbody", {}, body));
  }

  function bytes(n) {
    if (n === undefined || n === null || n < 0) return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? Math.round(n) : n.toFixed(1)) + " " + u[i];
  }

  function num(n, digits) {
    if (n === undefined || n === null || Number.isNaN(n)) return "–";
    return digits === undefined ? Math.round(n).toLocaleString("en") : n.toFixed(digits);
  }

  function seconds(s) {
    if (s === undefined || s === null || s < 0) return "–";
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 1 : 0) + " ms";
    if (s < 120) return s.toFixed(1) + " s";
    return Math.round(s / 60) + " min";
  }

  // rates turns counters into per-second rates between two polls: keep
  // one per page, call with the counters of each poll.
  function rates() {
    let last = null, lastAt = 0;
    return counters => {
      const now = performance.now(), out = {};
      for (const [k, v] of Object.entries(counters)) {
        out[k] = last && k in last ? Math.max(0, (v - last[k]) / ((now - lastAt) / 1000)) : null;
      }
      last = counters; lastAt = now;
      return out;
    };
  }

  function bar(fraction) {
    const f = Math.max(0, Math.min(1, fraction || 0));
    const cls = f > 0.9 ? "bar bad" : f > 0.7 ? "bar warn" : "bar";
    const span = el("span");
    span.style.width = (f * 100).toFixed(1) + "%";
    return el("div", { class: cls, title: (f * 100).toFixed(1) + "%" }, span);
  }

  // poll runs refresh now and every interval ms; the header's #status
  // says when the node last answered, or that it did not.
  function poll(refresh, interval) {
    const status = document.getElementById("status");
    async function tick() {
      try {
        await refresh();
        status.textContent = "updated " + new Date().toLocaleTimeString();
        status.className = "meta";
      } catch (err) {
        status.textContent = "node unreachable: " + err.message;
        status.className = "meta bad";
      }
      setTimeout(tick, interval);
    }
    tick();
  }

  return { getJSON, el, table, bytes, num, seconds, rates, bar, poll };
})();

// The edge's console: lanes, spool, uplink and latency from /api/edge;
// devices from /api/devices and /api/devices/{id} (an empty table while
// they answer 404); commands posted to /api/devices/{id}/commands.
"use strict";

(() => {
  const { getJSON, table, el, bytes, num, seconds, rates, bar } = fluxo;
  const laneRates = rates();
  let selected = location.hash.startsWith("#device/") ? decodeURIComponent(location.hash.slice(8)) : "";

  async function refresh() {
    const [edge, devices] = await Promise.all([getJSON("/api/edge"), getJSON("/api/devices?sort=last_seen").catch(() => null)]);
    if (edge) showEdge(edge);
    showDevices(devices);
    if (selected) await showDevice(selected);
  }

  function showEdge(e) {
    document.getElementById("edge-id").textContent = "· " + e.edge_id;
    document.getElementById("clients").textContent = num(e.clients);
    const up = document.getElementById("uplink");
    const connected = e.lanes.every(l => l.connected || l.records_total === 0 && l.backlog === 0);
    up.textContent = e.uplink_parked ? "parked" : connected ? "connected" : "down";
    up.className = e.uplink_parked ? "bad" : connected ? "ok" : "warn";
    up.setAttribute("data-state", up.textContent);

    const counters = {};
    for (const l of e.lanes) {
      counters[l.lane + ".in"] = l.accepted_total;
      counters[l.lane + ".out"] = l.records_total;
      counters[l.lane + ".bytes"] = l.sent_bytes_total;
    }
    const r = laneRates(counters);
    const rate = v => v === null || v === undefined ? "–" : num(v, 1);
    table("lanes",
      [{ title: "lane" }, { title: "in/s", num: true }, { title: "out/s", num: true }, { title: "sent/s", num: true },
        { title: "backlog", num: true }, { title: "batch", num: true }, { title: "ratio", num: true }, { title: "uplink" }],
      e.lanes.map(l => ({
        key: "lane-" + l.lane,
        class: l.parked ? "bad" : "",
        cells: [l.lane, rate(r[l.lane + ".in"]), rate(r[l.lane + ".out"]),
          r[l.lane + ".bytes"] === null ? "–" : bytes(r[l.lane + ".bytes"]) + "/s",
          num(l.backlog), l.batch_records ? num(l.batch_records, 1) : "–", num(l.compression_ratio, 2),
          l.parked ? el("span", { class: "bad", title: l.park_error || "" }, "parked: " + l.park_reason)
            : l.connected ? el("span", { class: "ok" }, "connected") : el("span", { class: "warn" }, "not connected")],
      })), "no lanes");

    const budget = e.spool_max_bytes;
    document.getElementById("spool-total").textContent =
      bytes(e.spool_bytes) + (budget > 0 ? " of " + bytes(budget) : " (no budget)");
    table("spool",
      [{ title: "lane" }, { title: "records", num: true }, { title: "bytes", num: true }, { title: "of budget" },
        { title: "evicted", num: true }, { title: "expired", num: true }],
      e.lanes.map(l => ({
        key: "spool-" + l.lane,
        cells: [l.lane, num(l.spool_records), bytes(l.spool_bytes), budget > 0 ? bar(l.spool_bytes / budget) : "–",
          num(l.evicted_total), num(l.expired_total)],
      })), "empty");

    table("latency",
      [{ title: "lane" }, { title: "p50", num: true }, { title: "p95", num: true }, { title: "p99", num: true }, { title: "mean", num: true }],
      e.lanes.map(l => ({
        cells: [l.lane, seconds(l.latency_p50_seconds), seconds(l.latency_p95_seconds), seconds(l.latency_p99_seconds),
          seconds(l.latency_mean_seconds)],
      })), "none");
  }

  // The registry's answer: a list, or {devices: [...]}; null while the
  // endpoint is not served.
  function deviceList(d) {
    if (!d) return [];
    if (Array.isArray(d)) return d;
    return Array.isArray(d.devices) ? d.devices : [];
  }

  function lastSeen(d) {
    const t = Date.parse(d.last_seen || "");
    return Number.isNaN(t) ? null : t;
  }

  function showDevices(d) {
    const q = document.getElementById("device-search").value.trim().toLowerCase();
    const quiet = parseFloat(document.getElementById("device-quiet").value);
    const now = Date.now();
    let list = deviceList(d).filter(x => {
      const id = String(x.id || x.client_id || ""), fleet = String(x.fleet || "");
      if (q && !id.toLowerCase().includes(q) && !fleet.toLowerCase().includes(q)) return false;
      if (quiet > 0) {
        const t = lastSeen(x);
        if (t === null || now - t < quiet * 60000) return false;
      }
      return true;
    });
    list.sort((a, b) => (lastSeen(b) || 0) - (lastSeen(a) || 0));
    document.getElementById("devices-count").textContent = d === null ? "(no device registry on this edge)" : list.length + " shown";
    table("devices",
      [{ title: "device" }, { title: "fleet" }, { title: "state" }, { title: "last seen" }],
      list.map(x => {
        const id = String(x.id || x.client_id || "");
        const t = lastSeen(x);
        return {
          key: "device-" + id,
          cells: [el("a", { href: "#device/" + encodeURIComponent(id) }, id), x.fleet || "–",
            x.connected ? el("span", { class: "ok", "data-state": "connected" }, "connected")
              : el("span", { class: "warn", "data-state": "offline" }, "offline"),
            el("span", { "data-last-seen": x.last_seen || "" }, t === null ? "–" : seconds((now - t) / 1000) + " ago")],
        };
      }), "no devices");
  }

  async function showDevice(id) {
    const page = document.getElementById("device-page");
    page.hidden = false;
    document.getElementById("device-id").textContent = id;
    const d = await getJSON("/api/devices/" + encodeURIComponent(id)).catch(() => null);
    const rows = d ? Object.entries(d).filter(([, v]) => typeof v !== "object" || v === null)
      .map(([k, v]) => ({ cells: [k, String(v)] })) : [];
    table("device-detail", [{ title: "field" }, { title: "value" }], rows, "no details for this device");
    const cmds = d && Array.isArray(d.recent_commands) ? d.recent_commands : [];
    const queued = new Set((d && Array.isArray(d.queued_commands) ? d.queued_commands : []).map(q => q.id));
    const cls = { acked: "ok", delivered: "ok", sent: "", queued: "warn", expired: "bad", rejected: "bad" };
    table("device-commands", [{ title: "command" }, { title: "name" }, { title: "status" }, { title: "since" }],
      cmds.map(c => {
        const t = Date.parse(c.at || "");
        return {
          key: "cmd-" + c.id,
          cells: [c.id, c.name || "–",
            el("span", { class: cls[c.status] || "", "data-status": c.status, title: c.reason || "" },
              c.status + (queued.has(c.id) ? " (waiting at the edge)" : "")),
            Number.isNaN(t) ? "–" : seconds((Date.now() - t) / 1000) + " ago"],
        };
      }), "no commands");
  }

  window.addEventListener("hashchange", () => {
    selected = location.hash.startsWith("#device/") ? decodeURIComponent(location.hash.slice(8)) : "";
    document.getElementById("device-page").hidden = !selected;
    if (selected) showDevice(selected);
  });

  document.getElementById("device-filter").addEventListener("submit", ev => ev.preventDefault());

  document.getElementById("command-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const out = document.getElementById("command-result");
    const body = { name: document.getElementById("command-name").value };
    const payload = document.getElementById("command-payload").value.trim();
    if (payload) {
      try { body.payload = JSON.parse(payload); } catch (err) { out.textContent = "payload: not JSON"; return; }
    }
    const ttl = parseInt(document.getElementById("command-ttl").value, 10);
    if (ttl > 0) body.expires_ms = ttl * 1000;
    const headers = { "Content-Type": "application/json" };
    const user = document.getElementById("command-user").value;
    if (user) headers.Authorization = "Basic " + btoa(user + ":" + document.getElementById("command-password").value);
    try {
      const resp = await fetch("/api/devices/" + encodeURIComponent(selected) + "/commands",
        { method: "POST", headers, body: JSON.stringify(body) });
      const text = await resp.text();
      if (resp.ok) {
        let id = text;
        try { id = JSON.parse(text).id; } catch (err) { /* shown as it is */ }
        out.textContent = "sent: " + id;
        out.dataset.command = id;
        await showDevice(selected);
      } else {
        out.textContent = resp.status === 404 || resp.status === 405 ? "this edge does not take commands"
          : "refused (" + resp.status + "): " + text;
      }
    } catch (err) {
      out.textContent = "cannot send: " + err.message;
    }
  });

  fluxo.poll(refresh, 1000);
})();

// The core's console: brokers, partitions, groups and request rates,
// polled from /api/cluster, /api/topics, /api/groups and /api/requests.
"use strict";

(() => {
  const { getJSON, table, bytes, num, rates } = fluxo;
  const requestRates = rates();

  function statusClass(s) {
    return s === "alive" ? "ok" : s === "failed" ? "bad" : "warn";
  }

  async function refresh() {
    const [cluster, topics, groups, requests] = await Promise.all([
      getJSON("/api/cluster"), getJSON("/api/topics"), getJSON("/api/groups"), getJSON("/api/requests"),
    ]);

    document.getElementById("node").textContent = cluster ? "· broker " + cluster.node : "";
    document.getElementById("controller").textContent = cluster && cluster.controller >= 0 ? cluster.controller : "none";
    table("brokers",
      [{ title: "id" }, { title: "serf" }, { title: "raft" }, { title: "kafka" }, { title: "leads", num: true }],
      ((cluster && cluster.members) || []).map(m => ({
        key: "broker-" + m.id,
        class: m.status === "failed" ? "bad" : m.fenced ? "warn" : "",
        cells: [
          m.id + (cluster.controller === m.id ? " ★" : ""),
          fluxo.el("span", { class: statusClass(m.status), "data-status": m.status }, m.status + (m.fenced ? " (fenced)" : "")),
          m.raft_role, m.kafka_addr, num(m.partitions_led),
        ],
      })), "no brokers");

    const r = requestRates(requests || {});
    table("requests", [{ title: "API" }, { title: "req/s", num: true }, { title: "total", num: true }],
      Object.keys(requests || {}).sort().map(api => ({
        cells: [api, r[api] === null ? "–" : num(r[api], 1), num(requests[api])],
      })), "no requests yet");

    const rows = [];
    let under = 0;
    for (const t of topics || []) {
      under += t.under_replicated;
      for (const p of t.partitions) {
        rows.push({
          key: t.name + "/" + p.partition,
          class: p.leader < 0 ? "bad" : p.under_replicated ? "warn" : "",
          cells: [
            t.name, p.partition,
            fluxo.el("span", { class: p.leader < 0 ? "bad" : "", "data-leader": p.leader }, p.leader < 0 ? "none" : p.leader),
            p.replicas.join(","), p.isr.join(","),
            p.under_replicated ? fluxo.el("span", { class: "bad" }, "under-replicated") : fluxo.el("span", { class: "ok" }, "ok"),
            p.local ? num(p.high_watermark) : "–", p.local ? bytes(p.disk_bytes) : "–",
          ],
        });
      }
    }
    document.getElementById("under").textContent = under ? under + " under-replicated" : "";
    table("partitions",
      [{ title: "topic" }, { title: "p", num: true }, { title: "leader" }, { title: "replicas" }, { title: "ISR" },
        { title: "state" }, { title: "end", num: true }, { title: "disk", num: true }],
      rows, "no topics");

    const grows = [];
    for (const g of groups || []) {
      for (const p of g.partitions) {
        grows.push({
          class: p.lag > 1000 ? "warn" : "",
          cells: [g.group, p.topic, p.partition, num(p.committed), p.end < 0 ? "–" : num(p.end), p.lag < 0 ? "–" : num(p.lag)],
        });
      }
      if (g.partitions.length === 0) grows.push({ cells: [g.group, "–", "", "", "", ""] });
    }
    table("groups",
      [{ title: "group" }, { title: "topic" }, { title: "p", num: true }, { title: "committed", num: true },
        { title: "end", num: true }, { title: "lag", num: true }],
      grows, "no consumer groups");
  }

  fluxo.poll(refresh, 1000);
})();

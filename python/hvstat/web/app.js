// The hvstat dashboard: the node overview, the containers and VMs tables, and a detail view per
// guest, all fed by /ws (docs/websocket.md) plus the history endpoints (docs/api.md) for what
// happened before the page was opened (or while it was disconnected).
//
// Subscriptions: "node", "containers.summary", "vms.summary" and "alerts" always; the open detail
// view adds "container:<id>" or "vm:<id>", the one guest whose full sample the page needs.

import { TimeChart } from "./chart.js";
import { Live } from "./conn.js";
import { startFleet } from "./fleet.js";
import * as f from "./format.js";
import { schedule, setText } from "./frame.js";
import { GuestTable } from "./table.js";

const $ = (id) => document.getElementById(id);
const BASE_TOPICS = ["node", "containers.summary", "vms.summary", "alerts"];
const RANGES = [300, 900, 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400];
// Up to an hour the charts are live (every sample pushed); past it they show the history API's
// buckets (min/avg/max per step), fetched again every minute, the last one being the open bucket.
const LIVE_MAX = 3600;
const longRange = () => range > LIVE_MAX;
// The step of a long range: the first of the default tiers' buckets (1 min, 5 min, 1 h, 1 d) that
// gives at most 800 points (24 h: 5 min, 7 d and 30 d: 1 h, 1 y: 1 d). A server whose tiers do not
// divide it answers 400 "bad step": asked again without a step, it picks the tier itself.
function stepFor(secs) {
  if (secs <= LIVE_MAX) return null;
  return [60, 300, 3600].find((s) => secs / s <= 800) ?? 86400;
}
// Bumped by every range change: an answer for an earlier range is dropped.
let rangeGen = 0;

// The charts' time range: ?range=<secs> in the URL, else the last one chosen here, else 15 min.
function initialRange() {
  const wanted = Number(new URLSearchParams(location.search).get("range") ?? localStorage.getItem("hvstat.range"));
  return RANGES.includes(wanted) ? wanted : 900;
}
let range = initialRange();

const state = {
  node: null,
  hello: null,
  detail: null, // {kind, id, topic, charts, facts, gen}
  alerts: new Map(),
  lastNodeTs: null,
};

// --- node overview ------------------------------------------------------------------------------

// Each series: label, colour, and the history field that fills it before the page was open (a list
// of fields: their sum, as `pick` adds them). `pick(sample)` gives the series' values from a node
// sample, in order.
const nodeCharts = [
  {
    id: "chart-cpu",
    kind: "pct",
    max: 100,
    series: [
      { label: "user", color: "--c1", stacked: true, field: "cpu_user_percent" },
      { label: "nice", color: "--c6", stacked: true, field: "cpu_nice_percent" },
      { label: "system", color: "--c2", stacked: true, field: "cpu_system_percent" },
      { label: "irq", color: "--c5", stacked: true, field: ["cpu_irq_percent", "cpu_softirq_percent"] },
      { label: "steal", color: "--c4", stacked: true, field: "cpu_steal_percent" },
      { label: "iowait", color: "--c3", stacked: true, field: "cpu_iowait_percent" },
      { label: "busy", color: "--muted", field: "cpu_usage" },
    ],
    pick(s) {
      const c = s.cpu?.total ?? {};
      return [c.user, c.nice, c.system, add(c.irq, c.softirq), c.steal, c.iowait, s.cpu_usage];
    },
  },
  {
    id: "chart-mem",
    kind: "pct",
    max: 100,
    series: [
      { label: "used", color: "--c1", field: "memory_usage" },
      { label: "swap", color: "--c3", field: "swap_used_percent" },
    ],
    pick: (s) => [s.memory_usage, s.swap?.total_bytes ? s.swap.used_percent : null],
  },
  {
    id: "chart-load",
    kind: "num",
    floor: 1,
    series: [
      { label: "1m", color: "--c1", field: "load_average_1m" },
      { label: "5m", color: "--c2", field: "load_average_5m" },
      { label: "15m", color: "--c5", field: "load_average_15m" },
    ],
    pick: (s) => [s.load_average_1m, s.load_average_5m, s.load_average_15m],
  },
  {
    id: "chart-psi",
    kind: "pct",
    floor: 5,
    series: [
      { label: "cpu", color: "--c1", field: "pressure_cpu_some_avg10" },
      { label: "memory", color: "--c3", field: "pressure_memory_some_avg10" },
      { label: "io", color: "--c4", field: "pressure_io_some_avg10" },
    ],
    pick: (s) => ["cpu", "memory", "io"].map((r) => s.pressure?.[r]?.some.avg10 ?? null),
  },
  {
    id: "chart-disk",
    kind: "rate",
    floor: 1024,
    // The host total: disks[] also lists LVM and md devices, whose I/O is counted again beneath them.
    series: [
      { label: "read", color: "--c1", field: "disk_read_bytes_per_sec" },
      { label: "write", color: "--c2", field: "disk_write_bytes_per_sec" },
    ],
    pick: (s) => [s.disk_total?.read_bytes_per_sec ?? null, s.disk_total?.write_bytes_per_sec ?? null],
  },
  {
    id: "chart-net",
    kind: "rate",
    floor: 1024,
    series: [
      { label: "rx", color: "--c1", field: "network_rx_bytes_per_sec" },
      { label: "tx", color: "--c2", field: "network_tx_bytes_per_sec" },
    ],
    pick: (s) => [s.network?.rx_bytes_per_sec ?? null, s.network?.tx_bytes_per_sec ?? null],
  },
];
for (const c of nodeCharts) c.chart = new TimeChart($(c.id), { ...c, window: range });

// a + b where either may be unknown: null only when both are.
function add(a, b) {
  return a == null && b == null ? null : (a ?? 0) + (b ?? 0);
}

// History answers: a plain list per field at full resolution, {min, avg, max} when coarser. A list
// of fields gives their sum per point.
// The min and max of a field answered in buckets, else null (plain samples, or a sum of fields).
function band(hist, field) {
  const s = field && !Array.isArray(field) ? hist.series[field] : null;
  return s && !Array.isArray(s) ? { min: s.min, max: s.max } : null;
}

// A history answer of `path` (a node's or a guest's history route) since `since`, with the step
// of the range; says which tier answered (#range data-tier: "memory", "1h"...).
async function fetchHistory(path, since) {
  const step = stepFor(range);
  const url = `${path}?since=${since.toFixed(3)}`;
  let hist = step ? await getJSON(`${url}&step=${step}`, true) : null;
  if (!hist) hist = await getJSON(url, true);
  if (hist) {
    $("range").dataset.tier = hist.tier ?? "memory";
    setText($("range-tier"), longRange() && hist.tier ? (hist.tier === "memory" ? "" : `${hist.tier} buckets`) : "");
  }
  return hist;
}

function column(hist, field) {
  if (Array.isArray(field)) {
    const cols = field.map((fl) => column(hist, fl));
    if (cols.every((c) => c == null)) return null;
    return hist.timestamps.map((_, j) => cols.reduce((acc, c) => add(acc, c ? c[j] : null), null));
  }
  const s = field ? hist.series[field] : null;
  if (s == null) return null;
  return Array.isArray(s) ? s : s.avg;
}

function onNode(s) {
  state.node = s;
  state.lastNodeTs = s.timestamp;
  if (!longRange()) for (const c of nodeCharts) c.chart.push(s.timestamp, c.pick(s));
  schedule(renderOverview);
}

// Fills the charts from the history endpoint: the whole range, or (after a reconnect) what was
// missed since `after`, the last sample seen before. A long range is fetched whole and replaces
// what the charts held.
async function loadNodeHistory(after = null) {
  const gen = rangeGen;
  const since = longRange() ? Date.now() / 1000 - range : Math.max(Date.now() / 1000 - range, after ?? 0);
  // A 404 is "history is disabled": the charts then start with the page.
  const hist = await fetchHistory("/api/monitoring/node/history", since);
  if (!hist || gen !== rangeGen) return;
  for (const c of nodeCharts) {
    const cols = c.series.map((s) => column(hist, s.field));
    if (longRange()) c.chart.clear();
    if (cols.some((x) => x)) c.chart.merge(hist.timestamps, cols, c.series.map((s) => band(hist, s.field)));
  }
}

// Small tables (disks, interfaces): rebuilt when the set of rows changes, else texts updated.
function miniRows(tbody, rows) {
  const keys = rows.map((r) => r[0]).join("\u0000");
  if (tbody.dataset.keys !== keys) {
    tbody.replaceChildren(
      ...rows.map((r) => {
        const tr = document.createElement("tr");
        r.forEach((_, i) => {
          const td = tr.insertCell();
          if (i > 0) td.className = "num";
        });
        return tr;
      }),
    );
    tbody.dataset.keys = keys;
  }
  rows.forEach((r, i) => r.forEach((text, j) => setText(tbody.rows[i].cells[j], text)));
}

function renderOverview() {
  const s = state.node;
  if (!s) return;
  const cpu = s.cpu?.total ?? {};
  setText($("cpu-big"), f.pct(s.cpu_usage));
  setText($("cpu-sub"), `${s.cpu?.count ?? f.NONE} CPUs \u00b7 user ${f.pct(cpu.user)} \u00b7 system ${f.pct(cpu.system)} \u00b7 iowait ${f.pct(cpu.iowait)} \u00b7 steal ${f.pct(cpu.steal)}`);
  const m = s.memory ?? {};
  setText($("mem-big"), f.pct(s.memory_usage));
  const swap = s.swap?.total_bytes ? `swap ${f.pct(s.swap.used_percent)}` : "no swap";
  setText($("mem-sub"), `${f.bytes(m.used_bytes)} of ${f.bytes(m.total_bytes)} \u00b7 cached ${f.bytes(m.cached_bytes)} \u00b7 ${swap}`);
  setText($("load-big"), f.num(s.load_average_1m));
  const perCore = s.load_average_1m != null && s.cpu?.count ? f.num(s.load_average_1m / s.cpu.count) : f.NONE;
  setText($("load-sub"), `5m ${f.num(s.load_average_5m)} \u00b7 15m ${f.num(s.load_average_15m)} \u00b7 per CPU ${perCore} \u00b7 running ${f.int(s.cpu?.procs_running)}`);
  const p = s.pressure ?? {};
  const psi = (r) => f.pct(p[r]?.some.avg10 ?? null, 2);
  setText($("psi-big"), psi("cpu"));
  setText($("psi-sub"), p.cpu || p.memory || p.io ? `cpu ${psi("cpu")} \u00b7 memory ${psi("memory")} \u00b7 io ${psi("io")}` : s.unavailable?.pressure ?? "not available on this kernel");

  const disks = s.disks ?? [];
  setText($("disk-big"), `R ${f.rate(s.disk_total?.read_bytes_per_sec ?? null)} \u00b7 W ${f.rate(s.disk_total?.write_bytes_per_sec ?? null)}`);
  miniRows(
    $("disks").tBodies[0],
    // A stacked device (LVM, md) is left out of the total above: its I/O is its disks' I/O.
    disks.map((d) => [d.stacked ? `${d.name} (stacked)` : d.name, f.rate(d.read_bytes_per_sec), f.rate(d.write_bytes_per_sec), f.pct(d.busy_percent)]),
  );
  setText($("net-big"), `\u2193 ${f.rate(s.network?.rx_bytes_per_sec ?? null)} \u00b7 \u2191 ${f.rate(s.network?.tx_bytes_per_sec ?? null)}`);
  // Busiest interfaces first, loopback last; at most eight.
  const ifs = [...(s.interfaces ?? [])]
    .sort((a, b) => (a.kind === "loopback") - (b.kind === "loopback") || (b.rx_bytes_per_sec ?? 0) + (b.tx_bytes_per_sec ?? 0) - ((a.rx_bytes_per_sec ?? 0) + (a.tx_bytes_per_sec ?? 0)) || a.name.localeCompare(b.name))
    .slice(0, 8);
  miniRows(
    $("nets").tBodies[0],
    ifs.map((i) => [i.name, f.rate(i.rx_bytes_per_sec), f.rate(i.tx_bytes_per_sec), f.int(i.rx_errors_total + i.tx_errors_total)]),
  );
  renderFilesystems(s.filesystems ?? []);

  setText($("node-meta"), `up ${f.duration(s.uptime_secs)}`);
  setText($("updated"), `node sample ${f.clock(s.timestamp)}`);
  $("overview").dataset.ts = String(s.timestamp);
}

function renderFilesystems(list) {
  const ul = $("filesystems");
  const keys = list.map((x) => x.mount_point).join("\u0000");
  if (ul.dataset.keys !== keys) {
    ul.replaceChildren(
      ...list.map(() => {
        const li = document.createElement("li");
        li.innerHTML = '<span class="fs-name"></span><span class="meter"><span></span></span><span class="fs-use num"></span>';
        return li;
      }),
    );
    ul.dataset.keys = keys;
  }
  let worst = null;
  list.forEach((x, i) => {
    const li = ul.children[i];
    setText(li.children[0], x.mount_point);
    li.children[0].title = `${x.device} (${x.fs_type}${x.read_only ? ", read-only" : ""})`;
    const used = x.used_percent;
    li.children[1].firstChild.style.width = `${used ?? 0}%`;
    li.dataset.level = used == null ? "" : used >= 90 ? "crit" : used >= 75 ? "warn" : "";
    setText(li.children[2], `${f.bytes(x.used_bytes)} / ${f.bytes(x.size_bytes)} \u00b7 ${f.pct(used, 0)}`);
    if (used != null && (worst == null || used > worst)) worst = used;
  });
  setText($("fs-big"), worst == null ? f.NONE : `fullest ${f.pct(worst, 0)}`);
}

// --- tables -------------------------------------------------------------------------------------

const memOfLimit = (d) => (typeof d.memory_limit_bytes === "number" && d.memory_usage_bytes != null && d.memory_limit_bytes > 0 ? (100 * d.memory_usage_bytes) / d.memory_limit_bytes : null);

const containers = new GuestTable($("containers"), {
  countEl: $("containers-count"),
  emptyText: "No containers found",
  onOpen: (id) => openDetail("container", id),
  columns: [
    { key: "name", label: "Name", width: "27%", text: (d) => d.name, cls: "name" },
    { key: "runtime", label: "Runtime", width: "11%", text: (d) => d.runtime },
    { key: "state", label: "State", width: "11%", text: (d) => d.state, cls: "state" },
    { key: "cpu", label: "CPU", width: "11%", num: true, text: (d) => f.pct(d.cpu_usage_percent), sort: (d) => d.cpu_usage_percent, bar: (d) => d.cpu_usage_percent },
    { key: "mem", label: "Memory", width: "13%", num: true, text: (d) => f.bytes(d.memory_usage_bytes), sort: (d) => d.memory_usage_bytes },
    {
      key: "limit",
      label: "Limit",
      width: "13%",
      num: true,
      text: (d) => f.limit(d.memory_limit_bytes),
      sort: (d) => (d.memory_limit_bytes === "max" ? Infinity : d.memory_limit_bytes),
    },
    { key: "memp", label: "Mem of limit", width: "14%", num: true, text: (d) => f.pct(memOfLimit(d)), sort: memOfLimit, bar: memOfLimit },
  ],
});

const vms = new GuestTable($("vms"), {
  countEl: $("vms-count"),
  emptyText: "No virtual machines found",
  onOpen: (id) => openDetail("vm", id),
  columns: [
    { key: "name", label: "Name", width: "20%", text: (d) => d.name, cls: "name" },
    { key: "origin", label: "Source", width: "8%", text: (d) => d.origin },
    { key: "status", label: "Status", width: "11%", text: (d) => d.status, cls: "state" },
    { key: "vcpus", label: "vCPUs", width: "7%", num: true, text: (d) => f.int(d.vcpus), sort: (d) => d.vcpus },
    { key: "cpu", label: "CPU (host)", width: "10%", num: true, text: (d) => f.pct(d.cpu_usage_percent), sort: (d) => d.cpu_usage_percent, bar: (d) => d.cpu_usage_percent },
    { key: "vcpu", label: "CPU (vCPUs)", width: "10%", num: true, text: (d) => f.pct(d.cpu_vcpu_percent), sort: (d) => d.cpu_vcpu_percent },
    { key: "memp", label: "Memory (guest)", width: "12%", num: true, text: (d) => f.pct(d.memory_usage_percent), sort: (d) => d.memory_usage_percent, bar: (d) => d.memory_usage_percent },
    { key: "rss", label: "RSS", width: "10%", num: true, text: (d) => f.bytes(d.memory_rss_bytes), sort: (d) => d.memory_rss_bytes },
    { key: "max", label: "Max memory", width: "12%", num: true, text: (d) => f.bytes(d.memory_max_bytes), sort: (d) => d.memory_max_bytes },
  ],
});

$("containers-filter").addEventListener("input", (e) => containers.setFilter(e.target.value));
$("vms-filter").addEventListener("input", (e) => vms.setFilter(e.target.value));

// --- detail view ----------------------------------------------------------------------------------

const DETAIL = {
  container: {
    title: "Container",
    api: "/api/containers/",
    charts: [
      { title: "CPU", kind: "pct", floor: 5, series: [{ label: "usage", color: "--c1", field: "cpu_usage_percent" }] },
      {
        title: "Memory",
        kind: "bytes",
        floor: 1 << 20,
        series: [
          { label: "usage", color: "--c1", field: "memory_usage_bytes" },
          { label: "working set", color: "--c2", field: "memory_working_set_bytes" },
        ],
      },
      {
        title: "Block I/O",
        kind: "rate",
        floor: 1024,
        series: [
          { label: "read", color: "--c1", field: "block_read_bytes_per_sec" },
          { label: "write", color: "--c2", field: "block_write_bytes_per_sec" },
        ],
      },
      {
        title: "Network",
        kind: "rate",
        floor: 1024,
        series: [
          { label: "rx", color: "--c1", field: "network_rx_bytes_per_sec" },
          { label: "tx", color: "--c2", field: "network_tx_bytes_per_sec" },
        ],
      },
    ],
    facts: (c) => [
      ["State", c.state],
      ["Runtime", c.runtime],
      ["Cgroup", c.cgroup_path],
      ["Processes", f.int(c.processes)],
      ["CPU", `${f.pct(c.cpu_usage_percent)} of the host \u00b7 ${f.num(c.cpu_cores)} cores`],
      ["CPU limit", c.cpu_limit_cores == null ? "no limit" : `${f.num(c.cpu_limit_cores)} cores`],
      ["Throttled", f.pct(c.cpu_throttled_percent)],
      ["Memory", `${f.bytes(c.memory_usage_bytes)} \u00b7 working set ${f.bytes(c.memory_working_set_bytes)}`],
      ["Memory limit", f.limit(c.memory_limit_bytes)],
      ["Swap", f.bytes(c.memory_swap_bytes)],
      ["OOM kills", f.int(c.memory_oom_kills_total)],
      ["PIDs", `${f.int(c.pids_current)} / ${c.pids_max === "max" ? "no limit" : f.int(c.pids_max)}`],
      ["Block I/O total", `read ${f.bytes(c.block_read_bytes)} \u00b7 written ${f.bytes(c.block_write_bytes)}`],
      ["Network", `${c.network_mode}${c.network_interfaces?.length ? ` (${c.network_interfaces.join(", ")})` : ""} \u00b7 rx ${f.bytes(c.network_rx_bytes)} \u00b7 tx ${f.bytes(c.network_tx_bytes)}`],
      ["Pressure (some, avg10)", `cpu ${f.pct(c.pressure_cpu?.some.avg10 ?? null, 2)} \u00b7 memory ${f.pct(c.pressure_memory?.some.avg10 ?? null, 2)} \u00b7 io ${f.pct(c.pressure_io?.some.avg10 ?? null, 2)}`],
      ["Sample", f.clock(c.timestamp)],
    ],
  },
  vm: {
    title: "Virtual machine",
    api: "/api/vms/",
    charts: [
      {
        title: "CPU",
        kind: "pct",
        floor: 5,
        series: [
          { label: "of the host", color: "--c1", field: "cpu_usage_percent" },
          { label: "of its vCPUs", color: "--c2", field: "cpu_vcpu_percent" },
        ],
      },
      { title: "Memory (guest's view)", kind: "pct", max: 100, series: [{ label: "used", color: "--c1", field: "memory_usage_percent" }] },
      {
        title: "Disk I/O",
        kind: "rate",
        floor: 1024,
        series: [
          { label: "read", color: "--c1", field: "disk_read_bytes_per_sec" },
          { label: "write", color: "--c2", field: "disk_write_bytes_per_sec" },
        ],
      },
      {
        title: "Network",
        kind: "rate",
        floor: 1024,
        series: [
          { label: "rx", color: "--c1", field: "network_rx_bytes_per_sec" },
          { label: "tx", color: "--c2", field: "network_tx_bytes_per_sec" },
        ],
      },
    ],
    facts: (v) => [
      ["Status", v.status_reason ? `${v.status} (${v.status_reason})` : v.status],
      ["Source", v.origin],
      ["vCPUs", `${f.int(v.vcpus)} of ${f.int(v.vcpus_max)}`],
      ["CPU", `${f.pct(v.cpu_usage_percent)} of the host \u00b7 ${f.pct(v.cpu_vcpu_percent)} of its vCPUs`],
      ["Memory", `max ${f.bytes(v.memory_max_bytes)} \u00b7 balloon ${f.bytes(v.memory_balloon_bytes)}`],
      ["Guest memory", `${f.pct(v.memory_usage_percent)} used \u00b7 usable ${f.bytes(v.memory_usable_bytes)}`],
      ["QEMU process", v.process ? `pid ${v.process.pid} \u00b7 RSS ${f.bytes(v.process.rss_bytes ?? v.memory_rss_bytes)}` : f.NONE],
      ["Disks", (v.disks ?? []).map((d) => d.name).join(", ") || f.NONE],
      ["NICs", (v.nics ?? []).map((n) => n.name).join(", ") || f.NONE],
      ["Cgroup", v.cgroup?.cgroup_path ?? v.process?.cgroup_path ?? f.NONE],
      ["Sample", f.clock(v.timestamp)],
    ],
  },
};

let detailGen = 0;

function openDetail(kind, id) {
  location.hash = `#/${kind}/${encodeURIComponent(id)}`;
}

function closeDetail() {
  if (location.hash) history.pushState(null, "", location.pathname + location.search);
  route();
}

function route() {
  const m = /^#\/(container|vm)\/(.+)$/.exec(location.hash);
  if (m) showDetail(m[1], decodeURIComponent(m[2]));
  else hideDetail();
}

function hideDetail() {
  if (!state.detail) return;
  for (const c of state.detail.charts) c.destroy();
  state.detail = null;
  $("detail").hidden = true;
  $("detail-backdrop").hidden = true;
  document.body.classList.remove("detail-open");
  live.setTopics(BASE_TOPICS);
}

function showDetail(kind, id) {
  if (state.detail && state.detail.kind === kind && state.detail.id === id) return;
  if (state.detail) for (const c of state.detail.charts) c.destroy();
  const spec = DETAIL[kind];
  const gen = ++detailGen;
  const box = $("detail");
  const known = (kind === "container" ? containers : vms).rows.get(id)?.data;
  setText($("detail-kind"), spec.title);
  setText($("detail-title"), known?.name ?? id);
  setText($("detail-id"), id);
  note(null);
  const chartsBox = box.querySelector(".detail-charts");
  chartsBox.replaceChildren();
  const charts = spec.charts.map((c) => {
    const section = document.createElement("section");
    const h = document.createElement("h3");
    h.textContent = c.title;
    const host = document.createElement("div");
    section.append(h, host);
    chartsBox.append(section);
    const chart = new TimeChart(host, { ...c, window: range });
    chart.fields = c.series.map((s) => s.field);
    return chart;
  });
  $("detail-facts").replaceChildren();
  state.detail = { kind, id, topic: `${kind}:${id}`, charts, gen, facts: null };
  box.hidden = false;
  $("detail-backdrop").hidden = false;
  document.body.classList.add("detail-open");
  $("detail-close").focus();
  live.setTopics(BASE_TOPICS, [state.detail.topic]);
  loadDetailHistory(state.detail);
}

async function loadDetailHistory(d) {
  const gen = rangeGen;
  const since = Date.now() / 1000 - range;
  const hist = await fetchHistory(`${DETAIL[d.kind].api}${encodeURIComponent(d.id)}/history`, since);
  if (state.detail !== d || gen !== rangeGen) return;
  if (!hist) {
    note("No history for this guest (history is disabled, or it is gone).");
    return;
  }
  if (hist.name) setText($("detail-title"), hist.name);
  for (const c of d.charts) {
    if (longRange()) c.clear();
    c.merge(hist.timestamps, c.fields.map((fl) => column(hist, fl)), c.fields.map((fl) => band(hist, fl)));
  }
}

function onDetailSample(sample) {
  const d = state.detail;
  if (!d) return;
  setText($("detail-title"), sample.name);
  if (!longRange()) for (const c of d.charts) c.push(sample.timestamp, c.fields.map((fl) => sample[fl] ?? null));
  d.sample = sample;
  schedule(renderFacts);
}

function renderFacts() {
  const d = state.detail;
  if (!d || !d.sample) return;
  const facts = DETAIL[d.kind].facts(d.sample);
  const dl = $("detail-facts");
  if (dl.childElementCount !== facts.length * 2) {
    dl.replaceChildren(...facts.flatMap(([k]) => [Object.assign(document.createElement("dt"), { textContent: k }), document.createElement("dd")]));
  }
  facts.forEach(([, v], i) => setText(dl.children[2 * i + 1], v ?? f.NONE));
}

function note(text) {
  const p = $("detail-note");
  p.hidden = !text;
  setText(p, text ?? "");
}

$("detail-close").addEventListener("click", closeDetail);
$("detail-backdrop").addEventListener("click", closeDetail);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && state.detail) closeDetail();
});
window.addEventListener("hashchange", route);

// --- time range -------------------------------------------------------------------------------------

function setRange(secs) {
  const longer = secs > range;
  // Live samples and a long range's buckets do not share a chart: switching clears it.
  const reload = longer || secs > LIVE_MAX || range > LIVE_MAX;
  const wasLong = longRange();
  range = secs;
  rangeGen++;
  localStorage.setItem("hvstat.range", String(secs));
  for (const b of $("range").querySelectorAll("button")) b.setAttribute("aria-pressed", String(Number(b.dataset.secs) === secs));
  if (!longRange()) setText($("range-tier"), "");
  const charts = [...nodeCharts.map((c) => c.chart), ...(state.detail?.charts ?? [])];
  for (const c of charts) {
    if (wasLong !== longRange() || longRange()) c.clear();
    c.setWindow(secs);
  }
  if (reload && state.hello) {
    loadNodeHistory();
    if (state.detail) loadDetailHistory(state.detail);
  }
}

$("range").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-secs]");
  if (b) setRange(Number(b.dataset.secs));
});
setRange(range);

// A long range's last point is the bucket being filled: fetched again every minute.
setInterval(() => {
  if (!longRange() || !state.hello || document.hidden) return;
  loadNodeHistory();
  if (state.detail) loadDetailHistory(state.detail);
}, 60_000);

// --- processes and users ---------------------------------------------------------------------------
// Only when the server monitors processes: GET /api/processes answers 404 when [processes] is off,
// and a subscribe naming a disabled topic fails whole, so "processes" and "users" join the base
// topics only after REST said yes. The hello carries no process state: the tables and the load
// status are drawn from REST first (/api/processes, /api/users, /status), then kept by /ws.

const PROC_TOPICS = ["processes", "users"];
const PROCS_FIRST = 20; // the [processes] top default, until the first Processes message says

const procs = { on: false, gen: 0 };

const users = new GuestTable($("users"), {
  countEl: $("users-count"),
  emptyText: "No users above min_uid with processes",
  onOpen: () => {},
  sortKey: "cpu",
  sortDesc: true,
  filterText: (d) => [d.name, d.uid],
  columns: [
    { key: "name", label: "User", width: "18%", text: (d) => (d.persistent_heavy ? `${d.name} (persistent)` : d.name), cls: "name" },
    { key: "uid", label: "UID", width: "8%", num: true, text: (d) => String(d.uid), sort: (d) => d.uid },
    { key: "procs", label: "Processes", width: "10%", num: true, text: (d) => f.int(d.processes), sort: (d) => d.processes },
    { key: "cpu", label: "CPU (core)", width: "12%", num: true, text: (d) => f.pct(d.cpu_percent), sort: (d) => d.cpu_percent },
    { key: "cpuh", label: "CPU (host)", width: "12%", num: true, text: (d) => f.pct(d.cpu_host_percent), sort: (d) => d.cpu_host_percent, bar: (d) => d.cpu_host_percent },
    { key: "rss", label: "RSS", width: "11%", num: true, text: (d) => f.bytes(d.rss_bytes), sort: (d) => d.rss_bytes },
    { key: "memp", label: "Memory", width: "10%", num: true, text: (d) => f.pct(d.memory_percent), sort: (d) => d.memory_percent, bar: (d) => d.memory_percent },
    { key: "io", label: "I/O", width: "19%", num: true, text: (d) => `R ${f.rate(d.read_bytes_per_sec)} \u00b7 W ${f.rate(d.write_bytes_per_sec)}`, sort: ioRate },
  ],
});

const topProcs = new GuestTable($("procs"), {
  countEl: $("procs-count"),
  emptyText: "No processes",
  onOpen: () => {},
  sortKey: "cpu",
  sortDesc: true,
  filterText: (d) => [d.name, d.id, d.user, d.container, d.vm],
  columns: [
    { key: "pid", label: "PID", width: "9%", num: true, text: (d) => d.id, sort: (d) => d.pid },
    { key: "name", label: "Command", width: "17%", text: (d) => d.name, cls: "name" },
    { key: "user", label: "User", width: "12%", text: (d) => d.user ?? f.NONE },
    { key: "state", label: "State", width: "7%", text: (d) => d.state, cls: "state" },
    { key: "cpu", label: "CPU", width: "11%", num: true, text: (d) => f.pct(d.cpu_percent), sort: (d) => d.cpu_percent, bar: (d) => d.cpu_host_percent },
    { key: "rss", label: "RSS", width: "11%", num: true, text: (d) => f.bytes(d.rss_bytes), sort: (d) => d.rss_bytes },
    { key: "thr", label: "Threads", width: "8%", num: true, text: (d) => f.int(d.threads), sort: (d) => d.threads },
    { key: "io", label: "I/O", width: "13%", num: true, text: (d) => `R ${f.rate(d.read_bytes_per_sec)} \u00b7 W ${f.rate(d.write_bytes_per_sec)}`, sort: ioRate },
    { key: "guest", label: "Guest", width: "12%", text: (d) => (d.container ? d.container.slice(0, 12) : d.vm ?? "") },
  ],
});

function ioRate(d) {
  return d.read_bytes_per_sec == null && d.write_bytes_per_sec == null ? null : (d.read_bytes_per_sec ?? 0) + (d.write_bytes_per_sec ?? 0);
}

$("users-filter").addEventListener("input", (e) => users.setFilter(e.target.value));
$("procs-filter").addEventListener("input", (e) => topProcs.setFilter(e.target.value));

// Rows keyed by user name and by pid (as a string: the table's ids are).
const userRows = (list) => list.map((u) => ({ ...u, id: u.user, name: u.user }));
const procRows = (list) => list.map((p) => ({ ...p, id: String(p.pid) }));

function drawProcesses(list, total) {
  topProcs.setAll(procRows(list));
  setText($("procs-note"), total > list.length ? `The ${list.length} busiest of ${f.int(total)} processes, by CPU; sorting and the filter apply to these.` : "");
}

// The header's load status: its level, and the rule that gave it as the tooltip.
function drawLoadStatus(status) {
  const pill = $("load-status");
  if (!status) {
    pill.hidden = true;
    return;
  }
  pill.hidden = false;
  pill.dataset.level = status.level;
  setText($("load-level"), status.level);
  const who = status.persistent_users?.length ? `\npersistent heavy users: ${status.persistent_users.join(", ")}` : "";
  pill.title = `Load status: ${status.level} (${status.rule})${who}`;
}

function showProcessPanels(on) {
  procs.on = on;
  $("users-panel").hidden = !on;
  $("procs-panel").hidden = !on;
  if (!on) drawLoadStatus(null);
  // The base topics are the array the connection holds: add or remove ours in place, then send.
  const want = on ? PROC_TOPICS.filter((t) => !BASE_TOPICS.includes(t)) : [];
  const drop = on ? [] : PROC_TOPICS.filter((t) => BASE_TOPICS.includes(t));
  if (!want.length && !drop.length) return;
  for (const t of want) BASE_TOPICS.push(t);
  for (const t of drop) BASE_TOPICS.splice(BASE_TOPICS.indexOf(t), 1);
  live.sendTopics();
}

// GET with the token; {status, body} (body null unless 2xx).
async function fetchStatus(url) {
  try {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    const r = await fetch(url, { headers });
    return { status: r.status, body: r.ok ? await r.json() : null };
  } catch (e) {
    return { status: 0, body: null };
  }
}

// After each hello: is process monitoring on? Then draw from REST and subscribe.
async function loadProcesses() {
  const gen = ++procs.gen;
  const list = await fetchStatus(`/api/processes?limit=${PROCS_FIRST}`);
  if (gen !== procs.gen) return;
  if (list.status === 404 || list.status === 0) {
    showProcessPanels(false);
    return;
  }
  showProcessPanels(true);
  if (list.body) drawProcesses(list.body.processes, list.body.total);
  const [u, s] = await Promise.all([fetchStatus("/api/users"), fetchStatus("/status")]);
  if (gen !== procs.gen) return;
  if (u.body) users.setAll(userRows(u.body.users));
  if (s.body) drawLoadStatus(s.body.status);
}

// /ws: Processes and Users messages; true when the message was one of ours.
function onProcessMessage(m) {
  if (m.type === "Processes") {
    if (!procs.on) showProcessPanels(true);
    drawProcesses(m.processes, m.total);
    drawLoadStatus(m.status);
    return true;
  }
  if (m.type === "Users") {
    users.setAll(userRows(m.users));
    drawLoadStatus(m.status);
    return true;
  }
  // Process monitoring went off (a restart with [processes] disabled): our subscribe failed whole.
  if (m.type === "error" && /process monitoring is disabled/.test(m.error ?? "")) {
    showProcessPanels(false);
    return true;
  }
  return false;
}

// --- alerts ----------------------------------------------------------------------------------------

function renderAlerts() {
  const pill = $("alerts-pill");
  const list = [...state.alerts.values()];
  pill.hidden = list.length === 0;
  setText(pill, `${list.length} alert${list.length === 1 ? "" : "s"} firing`);
  pill.title = list.map((a) => `${a.severity}: ${a.message}`).join("\n");
}

// --- the connection --------------------------------------------------------------------------------

// --- the API token ---------------------------------------------------------------------------------
// Only when the server has tokens configured (docs/api.md, "Authentication"). Given once as
// ?token=... in the page's URL (then removed from the address bar) or typed into the banner; kept
// in this tab's sessionStorage only.

const TOKEN_KEY = "hvstat.token";
{
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}
const token = () => sessionStorage.getItem(TOKEN_KEY);

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const value = $("token-input").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token-input").value = "";
  live.connect();
});

async function getJSON(url, quiet404 = false) {
  try {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    const r = await fetch(url, { headers });
    if (!r.ok) {
      if (!(quiet404 && r.status === 404)) console.warn(`${url}: HTTP ${r.status}`);
      return null;
    }
    return await r.json();
  } catch (e) {
    console.warn(`${url}: ${e}`);
    return null;
  }
}

function onHello(m) {
  state.hello = m;
  fleet.onHello(m);
  setText($("node-name"), m.node_id);
  document.title = `${m.node_id} \u00b7 hvstat`;
  $("node-name").title = `hvstat ${m.version}`;
  const seen = state.lastNodeTs;
  if (m.node) onNode(m.node);
  if (m.containers) containers.setAll(m.containers.containers);
  else containers.setAll([], "Container monitoring is off, or no sample yet");
  if (m.vms) vms.setAll(m.vms.vms);
  else vms.setAll([], "VM monitoring is off, or no sample yet");
  loadNodeHistory(seen);
  loadProcesses();
  if (state.detail) loadDetailHistory(state.detail);
  getJSON("/api/alerts", true).then((a) => {
    state.alerts = new Map((a?.active ?? []).filter((x) => x.state === "firing").map((x) => [x.alert_id, x]));
    renderAlerts();
  });
}

function onMessage(m) {
  if (onProcessMessage(m)) return;
  const d = state.detail;
  switch (m.type) {
    case "NodeMetrics":
      onNode(m.sample);
      break;
    case "ContainersSummary":
      containers.setAll(m.containers, null);
      break;
    case "VmsSummary":
      vms.setAll(m.vms, null);
      break;
    case "ContainerMetrics":
      if (d?.kind === "container") {
        const c = m.containers.find((x) => x.id === d.id);
        if (c) onDetailSample(c);
        else if (m.vanished.includes(d.id)) note(`This container is gone (last seen ${f.clock(m.timestamp)}).`);
      }
      break;
    case "VmMetrics":
      if (d?.kind === "vm" && m.vm_id === d.id) onDetailSample(m.sample);
      break;
    case "VmStatusChanged":
      vms.patch(m.vm_id, { status: m.status });
      if (d?.kind === "vm" && m.vm_id === d.id) note(m.vanished ? "This VM is gone." : `Status: ${m.previous ?? "new"} \u2192 ${m.status}`);
      break;
    case "AlertTriggered":
      state.alerts.set(m.alert_id, m);
      renderAlerts();
      break;
    case "AlertResolved":
      state.alerts.delete(m.alert_id);
      renderAlerts();
      break;
    case "error":
      if (d && m.detail?.topic === d.topic) note(`${m.error}: ${d.id}`);
      // A server without tokens does not expect the auth message a remembered token sends.
      else if (m.detail?.type !== "auth") console.warn("hvstat /ws:", m.error, m.detail);
      break;
    default:
      break;
  }
}

let countdown = null;

function onState(s) {
  const conn = $("conn");
  conn.dataset.state = s.state;
  const banner = $("banner");
  clearInterval(countdown);
  const asking = s.state === "auth";
  $("token-form").hidden = !asking;
  $("retry-now").hidden = asking;
  if (s.state === "open") {
    setText($("conn-text"), "live");
    banner.hidden = true;
    document.body.classList.remove("offline");
    return;
  }
  if (s.state === "connecting") {
    setText($("conn-text"), s.attempt ? "reconnecting" : "connecting");
    return;
  }
  document.body.classList.add("offline");
  banner.hidden = false;
  if (asking) {
    setText($("conn-text"), "not connected");
    setText($("banner-title"), "Authentication required");
    setText($("banner-text"), token() ? `(${s.reason || "invalid token"})` : "(this hvstat asks for an API token)");
    $("token-input").focus();
    return;
  }
  setText($("conn-text"), "disconnected");
  setText($("banner-title"), "Disconnected, retrying");
  const why = s.code === 1013 ? "the server has too many clients" : s.code === 1008 ? "the connection fell behind" : s.reason || "the server is unreachable";
  const tick = () => {
    const secs = Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000));
    setText($("banner-text"), `(${why}; attempt ${s.attempt}, next in ${secs} s). The numbers below are from ${f.clock(state.lastNodeTs)}.`);
  };
  tick();
  countdown = setInterval(tick, 1000);
}

const live = new Live(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`, { onHello, onMessage, onState, token });
$("retry-now").addEventListener("click", () => live.retryNow());
live.setTopics(BASE_TOPICS);
live.start();
route();
const fleet = startFleet({ token });

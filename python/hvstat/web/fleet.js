// The Fleet page (#/fleet): every node that writes to the fleet's engine, from GET
// /api/fleet/nodes (docs/api.md, "Fleet"), fetched every few seconds while the page is shown. A
// click on a node opens that node's own hvstat when its `url` label names it. The "Node | Fleet"
// switch in the top bar appears only when this server has a fleet view ([fleet] query_url; the
// route answers 404 without one).

import * as f from "./format.js";
import { setText } from "./frame.js";
import { GuestTable } from "./table.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 5000;

// "12 s ago", "3m 4s ago" from a unix time.
function ago(ts) {
  if (ts == null) return f.NONE;
  const secs = Math.max(0, Date.now() / 1000 - ts);
  return secs < 60 ? `${Math.round(secs)} s ago` : `${f.duration(secs)} ago`;
}

function labelText(labels) {
  return Object.entries(labels ?? {})
    .filter(([k]) => k !== "url")
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

function vmsText(d) {
  if (d.vms == null) return f.NONE;
  return d.vms_running == null ? f.int(d.vms) : `${d.vms_running} / ${d.vms}`;
}

// Rows for GuestTable: `id` and `name` are the node's name; `state` marks rows without a link.
function rows(nodes) {
  return nodes.map((n) => ({ ...n, id: n.name, state: n.url ? "linked" : "nolink" }));
}

export function startFleet({ token }) {
  let timer = null;
  let shown = false;

  const table = new GuestTable($("fleet-nodes"), {
    countEl: $("fleet-count"),
    emptyText: "No node wrote to the engine within the window",
    filterText: (d) => [d.name, labelText(d.labels), d.machine_id],
    onOpen: (id) => {
      const node = table.rows.get(id)?.data;
      if (node?.url) window.open(node.url, "_blank", "noopener");
      else note(`${id} has no url label: set its [labels] url to the address of its hvstat to link it here.`);
    },
    columns: [
      { key: "name", label: "Node", width: "16%", text: (d) => d.name, cls: "name" },
      { key: "labels", label: "Labels", width: "16%", text: (d) => labelText(d.labels) || f.NONE, sort: (d) => labelText(d.labels) },
      { key: "cpu", label: "CPU", width: "9%", num: true, text: (d) => f.pct(d.cpu_usage), sort: (d) => d.cpu_usage, bar: (d) => d.cpu_usage },
      { key: "mem", label: "Memory", width: "9%", num: true, text: (d) => f.pct(d.memory_usage), sort: (d) => d.memory_usage, bar: (d) => d.memory_usage },
      { key: "disk", label: "Disk /", width: "9%", num: true, text: (d) => f.pct(d.disk_usage), sort: (d) => d.disk_usage, bar: (d) => d.disk_usage },
      { key: "load", label: "Load 1m", width: "8%", num: true, text: (d) => f.num(d.load_average_1m), sort: (d) => d.load_average_1m },
      { key: "containers", label: "Containers", width: "9%", num: true, text: (d) => f.int(d.containers), sort: (d) => d.containers },
      { key: "vms", label: "VMs run/all", width: "9%", num: true, text: vmsText, sort: (d) => d.vms },
      { key: "alerts", label: "Alerts", width: "7%", num: true, text: (d) => f.int(d.alerts_firing), sort: (d) => d.alerts_firing },
      { key: "seen", label: "Last seen", width: "8%", num: true, text: (d) => ago(d.last_seen), sort: (d) => d.last_seen },
    ],
  });

  function note(text, level = null) {
    const p = $("fleet-note");
    setText(p, text ?? "");
    if (level) p.dataset.level = level;
    else delete p.dataset.level;
  }

  // The answer's status and JSON body (null when it was not JSON or did not arrive).
  async function fetchNodes() {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    try {
      const r = await fetch("/api/fleet/nodes", { headers });
      return { status: r.status, body: await r.json().catch(() => null) };
    } catch (e) {
      return { status: 0, body: { error: String(e) } };
    }
  }

  async function refresh() {
    const { status, body } = await fetchNodes();
    if (status === 200 && body) {
      table.setAll(rows(body.nodes));
      note(`From ${body.engine}: nodes seen within ${f.duration(body.within)}, at ${f.clock(body.timestamp)}.`);
      $("fleet").dataset.ts = String(body.timestamp);
    } else if (status === 404) {
      table.setAll([], "The fleet view is off on this hvstat (set [fleet] query_url)");
      note(null);
    } else {
      // The engine is down or refused: the rows stay as they were, the note says why.
      const detail = body?.detail?.reason ?? body?.detail?.error ?? "";
      note(`${body?.error ?? `HTTP ${status}`}${detail ? `: ${detail}` : ""} (retrying every ${POLL_MS / 1000} s)`, "error");
    }
    return status;
  }

  function schedule() {
    clearTimeout(timer);
    timer = shown ? setTimeout(async () => {
      await refresh();
      schedule();
    }, POLL_MS) : null;
  }

  function route() {
    shown = location.hash === "#/fleet";
    $("overview").hidden = shown;
    $("fleet").hidden = !shown;
    // The charts' time range means nothing on the Fleet page.
    $("range").hidden = shown;
    $("range-tier").hidden = shown;
    for (const [el, on] of [
      [$("view-fleet"), shown],
      [$("view-node"), !shown],
    ]) {
      if (on) el.setAttribute("aria-current", "page");
      else el.removeAttribute("aria-current");
    }
    if (shown) refresh();
    schedule();
  }

  $("fleet-filter").addEventListener("input", (e) => table.setFilter(e.target.value));
  window.addEventListener("hashchange", route);
  // The server's hello says whether it has a fleet view (no probe of the route, whose 404 would be
  // an error in the console); the switch shows then, and the route follows the hash.
  return {
    onHello(hello) {
      $("views").hidden = !hello.fleet;
      route();
    },
  };
}

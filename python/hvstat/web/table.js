// A live, sortable, filterable table of guests, keyed by id. Updates only mark it dirty; the next
// animation frame renders it incrementally: a cell's text is written only when it changed, rows are
// re-ordered only when the order changed, and nothing is read back from the layout. With a
// thousand guests a tick costs a few thousand string comparisons and the handful of DOM writes
// for the values that moved.

import { schedule, setText } from "./frame.js";

export class GuestTable {
  // columns: [{key, label, text(row) -> string, sort(row) -> number|string|null, num?, bar?(row)
  // -> percent|null, cls?}]. onOpen(id) when a row is chosen (click or Enter).
  constructor(table, { columns, onOpen, emptyText, sortKey, sortDesc = false, countEl }) {
    this.table = table;
    this.columns = columns;
    this.onOpen = onOpen;
    this.emptyText = emptyText;
    this.countEl = countEl;
    this.rows = new Map(); // id -> {data, tr, cells: [{td, text, bar}], visible}
    this.order = [];
    this.filter = "";
    this.sortKey = sortKey ?? columns[0].key;
    this.sortDesc = sortDesc;
    this.note = null;
    this.render = this.render.bind(this);

    const thead = table.createTHead();
    const hr = thead.insertRow();
    this.ths = columns.map((c) => {
      const th = document.createElement("th");
      th.scope = "col";
      if (c.num) th.className = "num";
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = c.label;
      b.addEventListener("click", () => this.sortBy(c.key));
      th.append(b);
      hr.append(th);
      return th;
    });
    this.tbody = table.createTBody();
    this.empty = document.createElement("tr");
    this.empty.className = "empty";
    const td = this.empty.insertCell();
    td.colSpan = columns.length;
    this.emptyCell = td;
    this.tbody.addEventListener("click", (e) => {
      const tr = e.target.closest("tr[data-id]");
      if (tr) this.onOpen(tr.dataset.id);
    });
    this.tbody.addEventListener("keydown", (e) => {
      const tr = e.target.closest("tr[data-id]");
      if (tr && (e.key === "Enter" || e.key === " ")) {
        e.preventDefault();
        this.onOpen(tr.dataset.id);
      }
    });
    this.updateSortMarks();
  }

  sortBy(key) {
    if (this.sortKey === key) this.sortDesc = !this.sortDesc;
    else {
      this.sortKey = key;
      // Numbers are most interesting largest first; names A to Z.
      this.sortDesc = !!this.columns.find((c) => c.key === key).num;
    }
    this.updateSortMarks();
    schedule(this.render);
  }

  updateSortMarks() {
    this.columns.forEach((c, i) => {
      const th = this.ths[i];
      if (c.key === this.sortKey) th.setAttribute("aria-sort", this.sortDesc ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    });
  }

  setFilter(text) {
    this.filter = text.trim().toLowerCase();
    schedule(this.render);
  }

  // The whole list (a summary message): rows not in it are removed.
  setAll(list, note = null) {
    const seen = new Set();
    for (const data of list) {
      seen.add(data.id);
      this.upsert(data);
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        this.rows.delete(id);
      }
    }
    this.note = note;
    schedule(this.render);
  }

  // One row changed (a status change between two summaries).
  patch(id, fields) {
    const row = this.rows.get(id);
    if (!row) return;
    row.data = { ...row.data, ...fields };
    schedule(this.render);
  }

  upsert(data) {
    let row = this.rows.get(data.id);
    if (!row) {
      const tr = document.createElement("tr");
      tr.dataset.id = data.id;
      tr.tabIndex = 0;
      const cells = this.columns.map((c) => {
        const td = tr.insertCell();
        if (c.num) td.className = "num";
        if (c.cls) td.classList.add(c.cls);
        let bar = null;
        if (c.bar) {
          bar = document.createElement("span");
          bar.className = "bar";
          td.append(bar);
        }
        const text = document.createElement("span");
        td.append(text);
        return { td, text, bar, barValue: null };
      });
      row = { data, tr, cells };
      this.rows.set(data.id, row);
    } else {
      row.data = data;
    }
  }

  matches(row) {
    if (!this.filter) return true;
    const d = row.data;
    return [d.name, d.id, d.runtime, d.origin, d.state, d.status].some((x) => x && String(x).toLowerCase().includes(this.filter));
  }

  compare() {
    const col = this.columns.find((c) => c.key === this.sortKey) ?? this.columns[0];
    const dir = this.sortDesc ? -1 : 1;
    const key = col.sort ?? col.text;
    return (a, b) => {
      const x = key(a.data);
      const y = key(b.data);
      // Unknown values sort last either way.
      if (x == null || y == null) return x == null ? (y == null ? 0 : 1) : -1;
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return c !== 0 ? c * dir : a.data.name.localeCompare(b.data.name);
    };
  }

  render() {
    const visible = [];
    for (const row of this.rows.values()) if (this.matches(row)) visible.push(row);
    visible.sort(this.compare());
    for (const row of visible) {
      this.columns.forEach((c, i) => {
        const cell = row.cells[i];
        setText(cell.text, c.text(row.data));
        if (cell.bar) {
          const p = c.bar(row.data);
          const w = p == null ? 0 : Math.max(0, Math.min(100, p));
          if (w !== cell.barValue) {
            cell.barValue = w;
            cell.bar.style.width = `${w}%`;
          }
        }
      });
      const state = row.data.state ?? row.data.status;
      if (row.tr.dataset.state !== state) row.tr.dataset.state = state;
    }
    const same = this.order.length === visible.length && visible.every((r, i) => r === this.order[i]);
    if (!same) {
      const shown = new Set(visible);
      for (const row of this.order) if (!shown.has(row) && row.tr.parentNode) row.tr.remove();
      // Move only the rows that are out of place (a new row is inserted where it belongs).
      if (this.empty.parentNode) this.empty.remove();
      let cur = this.tbody.firstChild;
      for (const row of visible) {
        if (row.tr === cur) cur = cur.nextSibling;
        else this.tbody.insertBefore(row.tr, cur);
      }
      this.order = visible;
    }
    const emptyText = this.rows.size === 0 ? this.note ?? this.emptyText : visible.length === 0 ? "No match for the filter" : null;
    if (emptyText) {
      setText(this.emptyCell, emptyText);
      if (!this.empty.parentNode) this.tbody.append(this.empty);
    } else if (this.empty.parentNode) this.empty.remove();
    if (this.countEl) setText(this.countEl, visible.length === this.rows.size ? String(this.rows.size) : `${visible.length} of ${this.rows.size}`);
  }
}

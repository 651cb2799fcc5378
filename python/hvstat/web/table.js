// A live, sortable, filterable table of guests, keyed by id, that stays cheap with a thousand rows:
//
// - Updates only mark it dirty; the next animation frame renders it (frame.js).
// - Only the rows in view (plus a few above and below) are in the DOM: spacer rows stand in for
//   the rest, so a tick lays out a screenful of rows, not a thousand (a table re-lays out every row
//   when one cell changes). Rows have a fixed height and the columns fixed widths (colgroup,
//   table-layout: fixed), so nothing has to be measured.
// - A cell's text is written only when it changed, rows are moved only when out of place, and
//   nothing is read back from the layout while rendering: the scroll position and the viewport's
//   height come from the scroll event and a ResizeObserver.

import { schedule, setText } from "./frame.js";

const ROW_HEIGHT = 33; // px; style.css sets the same on table.guests rows
const OVERSCAN = 8;

export class GuestTable {
  // columns: [{key, label, width (CSS), text(row) -> string, sort(row) -> number|string|null, num?,
  // bar?(row) -> percent|null, cls?}]. onOpen(id) when a row is chosen (click or Enter).
  // filterText(data) -> the strings the filter looks in (default: name, id, runtime, origin, state, status).
  constructor(table, { columns, onOpen, emptyText, sortKey, sortDesc = false, countEl, filterText }) {
    this.table = table;
    this.wrap = table.parentElement;
    this.columns = columns;
    this.onOpen = onOpen;
    this.emptyText = emptyText;
    this.countEl = countEl;
    this.filterText = filterText ?? ((d) => [d.name, d.id, d.runtime, d.origin, d.state, d.status]);
    this.rows = new Map(); // id -> {data, tr, cells: [{text, bar, barValue}]}
    this.shown = []; // the rows now in the DOM, in order
    this.filter = "";
    this.sortKey = sortKey ?? columns[0].key;
    this.sortDesc = sortDesc;
    this.note = null;
    this.scrollTop = 0;
    this.viewHeight = 480;
    this.render = this.render.bind(this);

    const colgroup = document.createElement("colgroup");
    for (const c of columns) {
      const col = document.createElement("col");
      if (c.width) col.style.width = c.width;
      colgroup.append(col);
    }
    table.append(colgroup);
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
    const spacer = () => {
      const tr = document.createElement("tr");
      tr.className = "spacer";
      tr.setAttribute("aria-hidden", "true");
      tr.insertCell().colSpan = columns.length;
      return tr;
    };
    this.topSpacer = spacer();
    this.bottomSpacer = spacer();
    this.spacerHeights = [-1, -1];
    this.empty = document.createElement("tr");
    this.empty.className = "empty";
    this.emptyCell = this.empty.insertCell();
    this.emptyCell.colSpan = columns.length;
    this.tbody.append(this.topSpacer, this.bottomSpacer);

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
    this.wrap.addEventListener(
      "scroll",
      () => {
        this.scrollTop = this.wrap.scrollTop;
        schedule(this.render);
      },
      { passive: true },
    );
    new ResizeObserver((entries) => {
      this.viewHeight = entries[entries.length - 1].contentRect.height;
      schedule(this.render);
    }).observe(this.wrap);
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
      const row = this.rows.get(data.id);
      if (row) row.data = data;
      else this.rows.set(data.id, { data, tr: null, cells: null });
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        if (row.tr) row.tr.remove();
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

  // A row's elements, made when it first comes into view.
  build(row) {
    const tr = document.createElement("tr");
    tr.dataset.id = row.data.id;
    tr.tabIndex = 0;
    row.cells = this.columns.map((c) => {
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
      return { text, bar, barValue: null };
    });
    row.tr = tr;
  }

  matches(row) {
    if (!this.filter) return true;
    const d = row.data;
    return this.filterText(d).some((x) => x != null && String(x).toLowerCase().includes(this.filter));
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
    const all = [];
    for (const row of this.rows.values()) if (this.matches(row)) all.push(row);
    all.sort(this.compare());
    const first = Math.max(0, Math.floor(this.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(all.length, Math.ceil((this.scrollTop + this.viewHeight) / ROW_HEIGHT) + OVERSCAN);
    const slice = all.slice(first, last);

    for (const row of slice) {
      if (!row.tr) this.build(row);
      this.columns.forEach((c, i) => {
        const cell = row.cells[i];
        setText(cell.text, c.text(row.data));
        if (cell.bar) {
          const p = c.bar(row.data);
          const w = p == null ? 0 : Math.round(Math.max(0, Math.min(100, p)));
          if (w !== cell.barValue) {
            cell.barValue = w;
            cell.bar.style.setProperty("--p", String(w));
          }
        }
      });
      const state = row.data.state ?? row.data.status;
      if (row.tr.dataset.state !== state) row.tr.dataset.state = state;
    }

    // Rows that left the view go; the slice is put in order between the spacers, moving only
    // the rows that are out of place.
    const keep = new Set(slice);
    for (const row of this.shown) if (!keep.has(row) && row.tr) row.tr.remove();
    let cur = this.topSpacer.nextSibling;
    for (const row of slice) {
      if (row.tr === cur) cur = cur.nextSibling;
      else this.tbody.insertBefore(row.tr, cur);
    }
    this.shown = slice;
    this.setSpacer(0, this.topSpacer, first * ROW_HEIGHT);
    this.setSpacer(1, this.bottomSpacer, (all.length - last) * ROW_HEIGHT);

    const emptyText = this.rows.size === 0 ? this.note ?? this.emptyText : all.length === 0 ? "No match for the filter" : null;
    if (emptyText) {
      setText(this.emptyCell, emptyText);
      if (!this.empty.parentNode) this.tbody.append(this.empty);
    } else if (this.empty.parentNode) this.empty.remove();
    if (this.countEl) setText(this.countEl, all.length === this.rows.size ? String(this.rows.size) : `${all.length} of ${this.rows.size}`);
  }

  setSpacer(i, tr, px) {
    if (this.spacerHeights[i] === px) return;
    this.spacerHeights[i] = px;
    tr.style.height = `${px}px`;
    tr.hidden = px === 0;
  }
}

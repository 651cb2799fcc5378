"""The Textual application of ``hvstat top``: a header, a table per view (containers, VMs,
processes, users), a filter line and a detail screen per guest. It draws what ``State`` holds
(model.py) whenever a feed (feed.py) says something changed, and nothing in between: no timer
redraws, so an idle screen costs nothing and the CPU it takes scales with the samples."""

from __future__ import annotations

import asyncio
import logging
import math
import signal
from typing import Any, ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from hvstat.top.feed import DirectFeed, ServerFeed
from hvstat.top.model import VIEWS, State, View, arrange, cells, spark_text


class WarningsToBanner(logging.Handler):
    """hvstat's warnings while top runs (a source failing, libvirt lost): shown in the banner.
    Logging's own stderr output would draw over the screen or be swallowed by Textual. Records
    may come from worker threads: they reach the app on its event loop."""

    def __init__(self, app: TopApp, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.WARNING)
        self.app, self.loop = app, loop
        self.count = 0
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{record.name.removeprefix('hvstat.')}: {record.getMessage()}"
        except Exception:  # noqa: BLE001 - a record with bad arguments still says something
            text = f"{record.name}: {record.msg!r}"
        self.count += 1
        self.last = text
        try:
            self.loop.call_soon_threadsafe(self.app.show_warning, record.created, text)
        except RuntimeError:  # the loop is closed: top is exiting
            pass


class DetailScreen(Screen[None]):
    """One guest: its numbers and a sparkline of its recent CPU."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("backspace", "back", "Back", show=False),
        Binding("q", "app.quit", "Quit"),
    ]
    DEFAULT_CSS = """
    DetailScreen #dbody { height: auto; padding: 0 1; }
    DetailScreen #dspark-label { padding: 1 1 0 1; }
    DetailScreen #dspark { height: 3; padding: 0 1; }
    """

    def __init__(self, entity: str) -> None:
        super().__init__()
        self.entity = entity

    def compose(self) -> ComposeResult:
        yield Static(id="dbanner", classes="banner")
        yield Static(id="dbody")
        yield Static(id="dspark-label")
        yield Static(id="dspark")
        yield Footer()

    def on_mount(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        app = self.app
        assert isinstance(app, TopApp)
        state = app.state
        banner = self.query_one("#dbanner", Static)
        text = state.banner_text()
        banner.display = text is not None
        banner.update(text or "")
        self.query_one("#dbody", Static).update("\n".join(state.detail_lines(self.entity)))
        points = list(state.spark.get(self.entity, ()))
        known = [v for v in points if not math.isnan(v)]
        label = f"CPU % (last {len(points)} samples, now {points[-1]:.1f}, max {max(known):.1f})" if known else "CPU % (no samples yet)"
        self.query_one("#dspark-label", Static).update(label)
        self.query_one("#dspark", Static).update("\n".join(spark_text(points, max(10, self.size.width - 2))))

    def action_back(self) -> None:
        app = self.app
        assert isinstance(app, TopApp)
        app.pop_screen()
        app.detail = None
        app.run_worker(app.feed.focus(None, app.state, app.changed), exclusive=False)


class TopApp(App[None]):
    TITLE = "hvstat top"
    CSS = """
    Screen { layout: vertical; }
    #banner, .banner { background: $error; color: $text; text-style: bold; height: auto; }
    #header { height: auto; padding: 0 1; }
    #tabs { height: 1; padding: 0 1; text-style: bold; }
    #filter { height: 1; border: none; padding: 0 1; display: none; }
    #filter.shown { display: block; }
    DataTable { height: 1fr; scrollbar-size-vertical: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("1", "view(0)", "Containers"),
        Binding("2", "view(1)", "VMs"),
        Binding("3", "view(2)", "Procs"),
        Binding("4", "view(3)", "Users"),
        Binding("tab", "next_view", "Next view", show=False),
        Binding("s", "sort", "Sort col"),
        Binding("r", "reverse", "Reverse"),
        Binding("slash", "filter", "Filter"),
        Binding("c", "cores", "Cores"),
        Binding("enter", "detail", "Detail", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, feed: ServerFeed | DirectFeed, state: State | None = None) -> None:
        super().__init__()
        self.feed = feed
        self.state = state or State(source=feed.label)
        self.view_index = 0
        self.sort: dict[str, tuple[str, bool]] = {v.name: (v.default_sort, True) for v in VIEWS}
        self.query_text = ""
        self.per_core = False
        self.detail: str | None = None
        self._row_keys: list[str] = []
        # The text of every row now in the table, in its order (for updating only what changed).
        self._cells: list[tuple[str, ...]] = []
        # The view's columns that fit the terminal's width (View.fit).
        self._shown = VIEWS[0].columns
        self._feed_task: asyncio.Task[None] | None = None
        self._warnings: WarningsToBanner | None = None

    @property
    def _main(self) -> Screen[Any]:
        """The main screen: its widgets are updated also while a detail screen is on top of it
        (the app's own query_one would look in that one)."""
        return self.screen_stack[0]

    @property
    def view(self) -> View:
        return VIEWS[self.view_index]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="banner")
            yield Static(id="header")
            yield Static(id="tabs")
            yield Input(placeholder="filter: type (Enter: back to the table, Esc: clear)", id="filter")
            yield DataTable(id="table", cursor_type="row", zebra_stripes=False)
        yield Footer()

    def on_mount(self) -> None:
        self._main.query_one("#banner", Static).display = False
        self._columns()
        self.redraw({"node", "alerts", "banner", self.view.name})
        self._main.query_one("#table", DataTable).focus()
        loop = asyncio.get_running_loop()
        # A closed terminal (SSH dropped: SIGHUP) or a kill ends top cleanly, instead of leaving it
        # running without a terminal to draw on.
        for sig in (signal.SIGHUP, signal.SIGTERM):
            loop.add_signal_handler(sig, self.exit)
        self._warnings = WarningsToBanner(self, loop)
        logging.getLogger("hvstat").addHandler(self._warnings)
        self._feed_task = loop.create_task(self.feed.run(self.state, self.changed))

    def show_warning(self, at: float, text: str) -> None:
        self.state.warning = (at, text)
        self.redraw({"banner"})

    def on_resize(self, event: Any) -> None:
        # Columns are dropped or brought back as the terminal narrows or widens.
        if self.view.fit(self.size.width) != self._shown:
            self._columns()
            self._rows()

    async def on_unmount(self) -> None:
        if self._feed_task is not None:
            self._feed_task.cancel()
            with_suppress = asyncio.gather(self._feed_task, return_exceptions=True)
            await with_suppress
        await self.feed.close()
        if self._warnings is not None:
            logging.getLogger("hvstat").removeHandler(self._warnings)

    def warnings_summary(self) -> str | None:
        """After the screen is restored: how many warnings were shown, and the last one."""
        w = self._warnings
        if w is None or not w.count:
            return None
        return f"hvstat top: {w.count} warning(s) while running; the last: {w.last}"

    # --- drawing ---

    def changed(self, kinds: set[str]) -> None:
        """A feed's news: redraw what shows it."""
        self.redraw(kinds)

    def redraw(self, kinds: set[str]) -> None:
        if isinstance(self.screen, DetailScreen):
            if kinds & {"detail", "containers", "vms", "banner"}:
                self.screen.redraw()
        if kinds & {"node", "alerts", "banner"}:
            self._header()
        if self.view.name in kinds or "banner" in kinds:
            self._tabs()
            self._rows()

    def _header(self) -> None:
        banner = self._main.query_one("#banner", Static)
        text = self.state.banner_text()
        banner.display = text is not None
        banner.update(text or "")
        width = max(40, self.size.width - 2)
        self._main.query_one("#header", Static).update("\n".join(self.state.header(width, self.per_core)))

    def _tabs(self) -> None:
        counts = {"containers": len(self.state.containers), "vms": len(self.state.vms)}
        parts = []
        for v in VIEWS:
            n = counts.get(v.name)
            label = f"{v.key_binding} {v.title}" + (f" ({n})" if n is not None else "")
            parts.append(f"[{label}]" if v is self.view else f" {label} ")
        sort, desc = self.sort[self.view.name]
        # The filter, while one is set, stays on its own line (the filter box) below this one.
        text = " ".join(parts) + f"  sort {self.view.column(sort).label} {'desc' if desc else 'asc'}"
        self._main.query_one("#tabs", Static).update(text)

    def _columns(self) -> None:
        table = self._main.query_one("#table", DataTable)
        table.clear(columns=True)
        sort, desc = self.sort[self.view.name]
        self._shown = self.view.fit(self.size.width)
        for c in self._shown:
            # The sort column is marked where the mark fits (the tabs line always names it).
            label = c.label + ("▼" if desc else "▲") if c.key == sort and len(c.label) < c.width else c.label
            table.add_column(label.rjust(c.width) if c.numeric else label, width=c.width, key=c.key)

    def _rows(self) -> None:
        table = self._main.query_one("#table", DataTable)
        view = self.view
        if view.name in ("processes", "users") and self.state.processes_note is not None and not view.rows(self.state):
            self._row_keys = []
            self._cells = []
            table.clear()
            table.add_row(*([self.state.processes_note] + [""] * (len(self._shown) - 1)), key="-")
            return
        sort, desc = self.sort[view.name]
        rows = arrange(view, view.rows(self.state), sort, desc, self.query_text)
        current = self._row_keys[table.cursor_row] if 0 <= table.cursor_row < len(self._row_keys) else None
        scroll_y = table.scroll_y
        keys = [view.key(r) for r in rows]
        shown = self._shown
        widths = [c.width for c in shown]
        numeric = [c.numeric for c in shown]
        texts = [tuple(t.rjust(w) if n else t for t, w, n in zip(cells(shown, r), widths, numeric)) for r in rows]
        if keys == self._row_keys and len(self._cells) == len(texts) and table.row_count == len(texts):
            # The same rows in the same order (the usual tick: most guests idle, the sort stable):
            # only the cells that changed are replaced, not the whole table rebuilt.
            for i, (old_row, new_row) in enumerate(zip(self._cells, texts)):
                if old_row != new_row:
                    for j, (a, b) in enumerate(zip(old_row, new_row)):
                        if a != b:
                            table.update_cell_at(Coordinate(i, j), b)
            self._cells = texts
            return
        table.clear()
        table.add_rows(texts)
        self._row_keys = keys
        self._cells = texts
        if current is not None and current in keys:
            table.move_cursor(row=keys.index(current), animate=False, scroll=False)
        table.scroll_to(y=scroll_y, animate=False)

    # --- actions ---

    def action_view(self, index: int) -> None:
        if index == self.view_index:
            return
        self.view_index = index
        self._row_keys = []
        self._cells = []
        self._columns()
        self._tabs()
        self._rows()
        self._main.query_one("#table", DataTable).move_cursor(row=0)

    def action_next_view(self) -> None:
        self.action_view((self.view_index + 1) % len(VIEWS))

    def action_sort(self) -> None:
        cols = [c.key for c in self.view.columns]
        sort, _ = self.sort[self.view.name]
        nxt = self.view.column(cols[(cols.index(sort) + 1) % len(cols)])
        self.sort[self.view.name] = (nxt.key, nxt.numeric)
        self._resort()

    def action_reverse(self) -> None:
        sort, desc = self.sort[self.view.name]
        self.sort[self.view.name] = (sort, not desc)
        self._resort()

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        sort, desc = self.sort[self.view.name]
        self.sort[self.view.name] = (key, not desc) if key == sort else (key, self.view.column(key).numeric)
        self._resort()

    def _resort(self) -> None:
        self._columns()
        self._tabs()
        self._rows()

    def action_cores(self) -> None:
        self.per_core = not self.per_core
        self._header()

    def action_filter(self) -> None:
        box = self._main.query_one("#filter", Input)
        box.add_class("shown")
        box.value = self.query_text
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self._tabs()
        self._rows()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        # A filter in effect stays in sight; an empty one closes the box.
        if not self.query_text:
            self._main.query_one("#filter", Input).remove_class("shown")
        self._main.query_one("#table", DataTable).focus()

    def action_clear_filter(self) -> None:
        box = self._main.query_one("#filter", Input)
        box.remove_class("shown")
        if self.query_text:
            self.query_text = ""
            box.value = ""
            self._tabs()
            self._rows()
        self._main.query_one("#table", DataTable).focus()

    def on_key(self, event: Any) -> None:
        # Escape inside the filter box clears it (the box would otherwise keep it).
        if event.key == "escape" and self.focused is self._main.query_one("#filter", Input):
            event.stop()
            self.action_clear_filter()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_detail()

    def action_detail(self) -> None:
        view = self.view
        table = self._main.query_one("#table", DataTable)
        if not view.detail or not (0 <= table.cursor_row < len(self._row_keys)):
            return
        entity = f"{'container' if view.name == 'containers' else 'vm'}:{self._row_keys[table.cursor_row]}"
        self.detail = entity
        self.push_screen(DetailScreen(entity))
        self.run_worker(self.feed.focus(entity, self.state, self.changed), exclusive=False)

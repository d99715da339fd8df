"""`reauto-tui`: the operator's live view of reautod, over the control socket.

The App owns the `LiveState` and the `DaemonLink` (one worker that keeps the connection up and
feeds the state); screens draw the state and ask the App, by message, to send confirmed actions.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.logging import TextualHandler

from reautod.config import config_path_from, load_settings
from reautod.errors import ConfigError, ReautodError
from reautod.security.text import terminal_safe
from tui.link import Backoff, DaemonLink, call_daemon
from tui.model import LiveState
from tui.screens.base import RequestAction, StateScreen
from tui.screens.campaigns import CampaignsScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.help import HelpScreen
from tui.screens.log import LogScreen

log = logging.getLogger(__name__)


class ReautoApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "reautod"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help"),
        Binding("d", "dashboard", "Dashboard"),
        Binding("c", "campaigns", "Campaigns"),
        Binding("l", "log", "Log"),
        Binding("D", "drain", "Drain"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        socket_path: Path,
        *,
        clock: Callable[[], datetime] | None = None,
        refresh_s: float = 2.0,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.state = LiveState(clock or (lambda: datetime.now(UTC)))
        self.link = DaemonLink(socket_path, self, refresh_s=refresh_s, backoff=backoff)
        self.requests_sent: list[tuple[str, dict[str, Any]]] = []

    def on_mount(self) -> None:
        self._show_connection(False, "connecting")
        self.push_screen(DashboardScreen(self.state))
        self.set_interval(1.0, self._redraw)  # durations tick
        self.maintain_link()

    @work(exclusive=True, group="link")
    async def maintain_link(self) -> None:
        await self.link.run()

    # -- LinkListener: called from the link worker, on this loop --------------------------------

    def link_up(self) -> None:
        self.state.set_connected(True)
        self._show_connection(True)
        self._redraw()

    def link_down(self, reason: str, retry_in_s: float) -> None:
        was_connected = self.state.connected
        self.state.set_connected(False, reason)
        self._show_connection(False, reason)
        if was_connected:
            self.notify(f"Lost reautod: {reason}", severity="error")
        self._redraw()

    def link_snapshot(self, results: Mapping[str, Any], errors: Mapping[str, str]) -> None:
        self.state.note_method_errors(errors)
        self.state.apply_snapshot(results.get("status"), results.get("health"),
                                  results.get("calls.list"), results.get("campaigns.list"))
        self._show_connection(True)
        self._redraw()

    def link_event(self, message: Mapping[str, Any]) -> None:
        self.state.apply_event(message)
        self._redraw()

    # -- drawing --------------------------------------------------------------------------------

    def _redraw(self) -> None:
        self._show_connection(self.state.connected, self.state.disconnect_reason)
        screen = self.screen if self.screen_stack else None
        if isinstance(screen, StateScreen) and screen.is_mounted:
            try:
                screen.refresh_view()
            except NoMatches:
                # only while the screen is being torn down (app exiting): nothing left to draw
                log.debug("redraw skipped: %s is unmounting", screen)

    def _show_connection(self, connected: bool, reason: str = "") -> None:
        if connected:
            daemon_state = self.state.daemon_state or "up"
            live = len(self.state.calls)
            self.sub_title = f"connected · {daemon_state} · {live} live call{'s' * (live != 1)}"
        else:
            self.sub_title = "DISCONNECTED · reconnecting"
        self.set_class(not connected, "-disconnected")

    # -- actions --------------------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def _go(self, screen_type: type[StateScreen]) -> None:
        """Show a top-level screen: back down to the dashboard, then push it (no pile-up)."""
        if isinstance(self.screen, screen_type):
            return
        while len(self.screen_stack) > 2 and not isinstance(self.screen, DashboardScreen):
            self.pop_screen()
        if screen_type is not DashboardScreen:
            self.push_screen(screen_type(self.state))

    def action_dashboard(self) -> None:
        self._go(DashboardScreen)

    def action_campaigns(self) -> None:
        self._go(CampaignsScreen)

    def action_log(self) -> None:
        self._go(LogScreen)

    def action_drain(self) -> None:
        def answered(ok: bool | None) -> None:
            if ok:
                self.send_request("daemon.drain", {}, "Draining: live calls finish, then reautod exits")

        self.push_screen(
            ConfirmScreen("Drain reautod? It takes no new calls, lets live ones finish, then exits."),
            answered,
        )

    def on_request_action(self, message: RequestAction) -> None:
        self.send_request(message.method, message.params, message.done)

    @work(group="actions")
    async def send_request(self, method: str, params: dict[str, Any], done: str) -> None:
        self.requests_sent.append((method, params))
        try:
            await call_daemon(self.socket_path, method, params)
        except ReautodError as err:
            # messages and `done` name campaigns and leads: escaped, not read as markup
            self.notify(terminal_safe(f"{method} failed: {err.message} ({err.code})"),
                        severity="error", timeout=8, markup=False)
            return
        self.notify(terminal_safe(done), markup=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reauto-tui", description="Live view of reautod.")
    parser.add_argument("--config", help="config file (default: $REAUTOD_CONFIG or "
                        "/etc/reautod/reautod.toml)")
    parser.add_argument("--socket", help="control socket path (default: from the config)")
    parser.add_argument("--refresh", type=float, default=2.0,
                        help="seconds between snapshot refreshes (default 2)")
    args = parser.parse_args(argv)
    if args.socket:
        socket_path = Path(args.socket)
    else:
        try:
            path, required = config_path_from(args.config)
            socket_path = load_settings(path, required=required).socket_path()
        except ConfigError as err:
            print(f"reauto-tui: {err.message}", file=sys.stderr)
            for field, problem in err.problems:
                print(f"  {field}: {problem}", file=sys.stderr)
            return 2
    # Log records go to Textual's devtools console, never onto the screen being drawn.
    logging.basicConfig(level=logging.INFO, handlers=[TextualHandler()])
    ReautoApp(socket_path, refresh_s=max(0.2, args.refresh)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

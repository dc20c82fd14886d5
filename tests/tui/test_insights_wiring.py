from __future__ import annotations

from pathlib import Path

from monitor import store
from monitor.tui.app import MonitorApp
from monitor.tui.screens.insights import InsightsScreen
from tests.helpers import event_row, gateway_body, screen_text, wait_for

T = 1764490000.0


async def test_i_opens_insights_and_it_follows_new_rows(db_path: Path) -> None:
    db = store.open_store(db_path)
    sid = store.start_session(db, listen=None, mode="test")
    store.write_batch(
        db.conn, [event_row(gateway_body(user_id="r1", created_at=T), session_id=sid, received_at=T + 1)], []
    )
    db.close()
    app = MonitorApp(db_path, session_id=None, clock=lambda: T + 100)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.main_screen.table.total > 0)
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, InsightsScreen), what="the screen")
        assert "views and closes of all sessions" in screen_text(app) and "1 delivery" in screen_text(app)
        db = store.open_store(db_path)
        close = gateway_body(event="payment_gateway.close", user_id="r1", created_at=T + 30, click_action="X")
        store.write_batch(db.conn, [event_row(close, session_id=sid, received_at=T + 31)], [])
        db.close()
        await wait_for(pilot, lambda: "2 deliveries" in screen_text(app), timeout=15, what="the refresh")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, InsightsScreen))

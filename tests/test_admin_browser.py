"""The admin end to end in a real browser: Debian's Chromium driven by Playwright, the app under uvicorn.

Playwright launches the system Chromium (``executable_path``), so no browser
is downloaded. Without Chromium or Playwright the test is skipped with the
reason, except under ``CI=true``, where it fails. Screenshots of the form
(with its error) and of the detail page (new state, history) are written to
``$STATETYPE_ARTIFACTS/admin`` (default ``.artifacts/admin``); with
``STATETYPE_SCREENSHOTS=docs/img`` they also refresh the documentation's.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.orm import Session

from examples.api import create_app
from examples.api.demo import seed
from examples.projects import Project, ProjectLog

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = os.environ.get("STATETYPE_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("STATETYPE_ARTIFACTS", ROOT / ".artifacts")) / "admin"


def _unavailable(reason: str) -> None:
    if CI:
        pytest.fail(f"{reason} (the browser test is required under CI=true)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def sync_playwright() -> Callable[[], Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:  # the dev extra installs it
        _unavailable(f"Playwright for Python is not installed: {error}")
        raise
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set STATETYPE_CHROMIUM)")
    return sync_playwright


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, sa.Engine]]:
    """The examples/api application (its admin under /admin) served by uvicorn on a free port."""

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'admin.db'}")
    seed(engine)  # ann edits Rivers (project 1), bob edits Deltas
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", engine
    uvicorn_server.should_exit = True
    thread.join(10)
    engine.dispose()


def test_two_users_a_form_with_an_error_then_the_new_state_and_history(
    sync_playwright: Callable[[], Any], server: tuple[str, sa.Engine]
) -> None:
    url, engine = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:

            def sign_in(name: str) -> Any:
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.set_default_timeout(10_000)
                page = context.new_page()
                page.goto(f"{url}/admin/login")
                page.fill("input[name=username]", name)
                page.fill("input[name=password]", name)
                page.click("button[type=submit]")
                page.wait_for_url(f"{url}/admin/")
                return page

            # bob edits Deltas, not Rivers: no button, the reason instead.
            bob = sign_in("bob")
            bob.goto(f"{url}/admin/project/details/1")
            assert bob.locator(".statetype-state").inner_text() == "Draft"
            assert bob.locator("a.statetype-transition").count() == 0
            assert "Only the project's editors may do this." in bob.locator(".statetype-refused").inner_text()

            # ann edits Rivers: Publish and Delete buttons.
            ann = sign_in("ann")
            ann.goto(f"{url}/admin/project/details/1")
            assert ann.locator("a.statetype-transition").all_inner_texts() == ["Publish", "Delete"]
            ann.click("a.statetype-transition >> text=Publish")
            ann.wait_for_url(f"{url}/admin/project/transition/publish/1")

            # A bad value: the title cleared. The error shows on the same page.
            ann.fill("input[name=title]", "")
            ann.fill("textarea[name=summary]", "A tour of the rivers of Europe")
            ann.click("button.statetype-apply")
            error = ann.locator(".statetype-error[data-field=title]")
            assert error.inner_text() == "This field is required."
            assert ann.input_value("textarea[name=summary]") == "A tour of the rivers of Europe"
            ann.screenshot(path=str(ARTIFACTS / "admin-form.png"), full_page=True)

            # A good value: back on the detail page with the new state and its history row.
            ann.fill("input[name=title]", "Rivers of Europe")
            ann.click("button.statetype-apply")
            ann.wait_for_url(f"{url}/admin/project/details/1")
            assert ann.locator(".statetype-message").inner_text() == "Publish: Project 1 is now Published"
            assert ann.locator(".statetype-state").inner_text() == "Published"
            row = ann.locator("table.statetype-history tbody tr")
            assert row.count() == 1
            cells = row.locator("td").all_inner_texts()
            assert cells[1:5] == ["Publish", "Draft", "Published", "1"]
            assert "title: Rivers of Europe" in cells[5]
            assert ann.locator("a.statetype-transition").all_inner_texts() == ["Withdraw", "Delete"]
            ann.screenshot(path=str(ARTIFACTS / "admin-detail.png"), full_page=True)

            # bob now sees the new state too, and still no button.
            bob.reload()
            assert bob.locator(".statetype-state").inner_text() == "Published"
            assert bob.locator("a.statetype-transition").count() == 0
        finally:
            browser.close()

    for name in ("admin-form.png", "admin-detail.png"):
        shot = ARTIFACTS / name
        assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        docs = os.environ.get("STATETYPE_SCREENSHOTS")
        if docs:
            shutil.copyfile(shot, ROOT / docs / name)
    with Session(engine) as s:  # what the browser did, as the database holds it
        project = s.get_one(Project, 1)
        assert project.state.is_published and project.title == "Rivers of Europe"
        logs = s.scalars(sa.select(ProjectLog)).all()
        assert [(log.transition, log.from_value, log.to_value, log.actor) for log in logs] == [("publish", "1", "2", "1")]

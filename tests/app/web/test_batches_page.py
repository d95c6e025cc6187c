"""The batches page in a real headless Chromium against the real app (keys required for writes, reads
public) scoring real tiny NB201 networks on a local worker: a batch started while the page is open
appears, waiting behind an earlier one, and its progress advances on screen until it is done; the Cancel
button appears only for the key that started a batch or an admin key, pasted into the page, and cancels
it."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import TINY_CONFIG, LiveServer, one_cell_per_class, service_settings, wait_for_batch, wait_until
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from app.db import Database
from app.services.keys import Scope, create_key
from app.web.browser import chromium_missing, console_errors, headless_chromium
from search_spaces.nb201 import cell as nb201

KEYS = {"alice": Scope.WRITE, "bob": Scope.WRITE, "root": Scope.ADMIN}
# Distinct classes, each scored once.
WATCHED_CELLS = 24
# Long enough (tiny cells, one worker) that the batch is still unfinished when the page cancels it.
LONG_BATCH = 150


@dataclass(frozen=True)
class Keyed:
    server: LiveServer
    tokens: dict[str, str]

    @property
    def base(self) -> str:
        return str(self.server.client.base_url)

    def start_batch(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[key]}"}
        response = self.server.client.post("/v1/batches", json={"config": TINY_CONFIG, **body}, headers=headers)
        assert response.status_code == 202, response.text
        return response.json()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    home = tmp_path_factory.mktemp("batches-page")
    url = f"sqlite:///{home / 'nasscore.db'}"
    with LiveServer(service_settings(home, url, auth="on")) as server:
        database = Database(url)
        tokens = {name: create_key(database, name, scope).token for name, scope in KEYS.items()}
        database.dispose()
        yield Keyed(server, tokens)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = chromium_missing()
    if missing:
        pytest.skip(f"no headless browser: {missing}")
    with headless_chromium() as driver:
        yield driver


def batch_row(browser: WebDriver, batch_id: int) -> WebElement | None:
    rows = browser.find_elements(By.ID, f"batch-{batch_id}")
    return rows[0] if rows else None


def shown(row: WebElement, field: str) -> str:
    return row.find_element(By.CSS_SELECTOR, f'[data-field="{field}"]').text


def cancel_button(browser: WebDriver, batch_id: int) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, f'#batch-{batch_id} button[data-field="cancel"]')


def use_key(browser: WebDriver, name: str | None, token: str | None) -> None:
    """Paste a key into the page's key panel (or forget the stored one) and wait until the page knows it."""
    browser.find_element(By.CSS_SELECTOR, "#key-panel summary").click()
    if token is None:
        browser.find_element(By.ID, "key-forget").click()
        expected = "API key: none"
    else:
        browser.find_element(By.ID, "key-input").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
        expected = f"API key: {name} ({KEYS[name].label})"
    wait_until(lambda: browser.find_element(By.ID, "key-status").text == expected, 30, expected)
    browser.find_element(By.CSS_SELECTOR, "#key-panel summary").click()


def test_a_batch_appears_and_its_progress_advances_on_screen(keyed: Keyed, browser: WebDriver) -> None:
    browser.get(f"{keyed.base}/batches")
    # Items are claimed oldest job first, so the watched batch waits at 0 until the one ahead is cancelled;
    # no class of it is in the one ahead (whose scores would complete its items at once).
    first = one_cell_per_class(LONG_BATCH, seed=3)
    ahead = keyed.start_batch("bob", {"archs": first})
    watched = one_cell_per_class(WATCHED_CELLS, seed=11, taken={nb201.canonical_key(arch) for arch in first})
    batch = keyed.start_batch("alice", {"archs": watched, "proxies": ["snip"]})
    seen: list[tuple[str, int]] = []

    def watch(until: str) -> Callable[[], bool]:
        def reached() -> bool:
            row = batch_row(browser, batch["id"])
            if row is None:
                return False
            status = shown(row, "status")
            value = int(float(row.find_element(By.CSS_SELECTOR, "progress").get_attribute("value")))
            if not seen or seen[-1] != (status, value):
                seen.append((status, value))
            return status == until

        return reached

    wait_until(watch("pending"), 60, f"batch {batch['id']} to appear on the page", interval=0.2)
    assert seen == [("pending", 0)]
    row = batch_row(browser, batch["id"])
    assert row is not None and shown(row, "counts") == f"0 / {WATCHED_CELLS}" and shown(row, "owner") == "alice"

    bob = {"Authorization": f"Bearer {keyed.tokens['bob']}"}
    assert keyed.server.client.delete(ahead["url"], headers=bob).status_code == 200
    wait_until(watch("done"), 300, f"batch {batch['id']} to finish on the page", interval=0.2)
    values = [value for _, value in seen]
    assert values == sorted(values) and values[-1] == WATCHED_CELLS, seen  # advanced, never back
    row = batch_row(browser, batch["id"])
    assert row is not None and shown(row, "counts") == f"{WATCHED_CELLS} / {WATCHED_CELLS}"
    assert shown(row, "rate") != "—"
    assert keyed.server.client.get(batch["url"]).json()["done"] == WATCHED_CELLS
    assert not console_errors(browser)


def test_cancel_is_offered_to_the_key_that_started_the_batch_or_an_admin_and_works(
    keyed: Keyed, browser: WebDriver
) -> None:
    batch = keyed.start_batch("alice", {"sample": {"n": LONG_BATCH, "seed": 7}})
    browser.get(f"{keyed.base}/batches")
    wait_until(lambda: batch_row(browser, batch["id"]), 30, "the batch on the page")
    assert not cancel_button(browser, batch["id"]).is_displayed()  # no key: reads only

    use_key(browser, "bob", keyed.tokens["bob"])
    assert not cancel_button(browser, batch["id"]).is_displayed()  # another write key's batch
    use_key(browser, "root", keyed.tokens["root"])
    assert cancel_button(browser, batch["id"]).is_displayed()  # an admin may cancel any
    use_key(browser, "alice", keyed.tokens["alice"])
    browser.refresh()  # the key stays in this browser
    wait_until(lambda: cancel_button(browser, batch["id"]).is_displayed(), 30, "alice's Cancel button")

    cancel_button(browser, batch["id"]).click()

    def cancelled_on_screen() -> bool:
        row = batch_row(browser, batch["id"])
        return row is not None and shown(row, "status") == "cancelled"

    wait_until(cancelled_on_screen, 60, "the batch to show as cancelled")
    assert not cancel_button(browser, batch["id"]).is_displayed()
    assert wait_for_batch(keyed.server.client, batch["id"])["status"] == "cancelled"
    assert not console_errors(browser)
    use_key(browser, None, None)

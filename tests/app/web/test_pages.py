"""The dashboard's pages in a real headless Chromium (Debian's `chromium`, driven by Selenium) against the
real app under uvicorn on a real SQLite file: every page loads without a console error, the leaderboard
shows the rows GET /v1/leaderboard returns (paging and selectors included), the correlation page shows
the report's figures and a scatter point per observed class, an architecture's page draws its cell and
lists its scores and observations, and everything a user can influence is shown as text.

The population is written through the service layer as a worker records it: two configurations, 60
isomorphism classes (one with three isomorphic members) under the first and 25 under the second, with
accuracies that the vote orders imperfectly."""

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import LiveServer, one_cell_per_class, service_settings, store_classes, wait_until
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from app.db import Database
from app.services.keys import Scope, create_key
from app.services.observations import ObservationInput, store_observations
from app.services.spaces import ensure_space, get_or_create_architectures
from app.web.browser import chromium_missing, console_errors, headless_chromium
from app.web.templating import CONTENT_SECURITY_POLICY, accuracy, number
from scorers.presets import PRESETS
from search_spaces.nb201 import cell as nb201

PROXIES = tuple(dict.fromkeys(PRESETS["mission"].proxies + PRESETS["best"].proxies))
CLASSES = 60
OTHER_CLASSES = 25
PAGE_SIZE = 50
# Shown as text wherever it appears: an observation source is any printable string a write key chooses.
HOSTILE_SOURCE = '<img src=x onerror="document.title=1">'


@dataclass(frozen=True)
class Dashboard:
    server: LiveServer
    database: Database
    fingerprints: tuple[str, str]
    twins: list[str]  # three isomorphic cells, one class of the first configuration

    @property
    def base(self) -> str:
        return str(self.server.client.base_url)

    def api(self, path: str, **params: Any) -> Any:
        response = self.server.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()


def _isomorphic_cells(count: int) -> list[str]:
    """`count` cells of one isomorphism class."""
    members: dict[str, list[str]] = {}
    for arch in nb201.all_archs():
        group = members.setdefault(nb201.canonical_key(arch), [])
        group.append(arch)
        if len(group) == count:
            return group
    raise AssertionError(f"no class with {count} members")


def _scores(rng: random.Random) -> dict[str, float]:
    return {proxy: rng.uniform(1.0, 100.0) for proxy in PROXIES}


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    home = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{home / 'nasscore.db'}"
    settings = service_settings(home, url)
    database = Database(url)
    rng = random.Random(0)
    twins = _isomorphic_cells(3)
    singles = one_cell_per_class(CLASSES - 1, seed=1, taken={nb201.canonical_key(twins[0])})
    classes = [twins, *[[arch] for arch in singles]]
    first = store_classes(database, 0, classes, [_scores(rng) for _ in classes])
    second = store_classes(database, 1, classes[:OTHER_CLASSES], [_scores(rng) for _ in range(OTHER_CLASSES)])
    cells = [arch for members in classes for arch in members]
    observations = [ObservationInput(arch, "cifar10", rng.uniform(80.0, 94.0), source="benchmark") for arch in cells]
    hostile = ObservationInput(twins[0], "cifar10", 50.0, source=HOSTILE_SOURCE)
    store_observations(database, ["nb201"] * (len(cells) + 1), [*observations, hostile], [""] * (len(cells) + 1))
    with LiveServer(settings) as server:
        yield Dashboard(server, database, (first.fingerprint, second.fingerprint), twins)
    database.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = chromium_missing()
    if missing:
        pytest.skip(f"no headless browser: {missing}")
    with headless_chromium() as driver:
        yield driver


def open_page(browser: WebDriver, url: str) -> None:
    """Load `url` and wait for the page's scripts to have run; the console must stay clean."""
    browser.get(url)
    wait_until(lambda: browser.execute_script("return document.readyState") == "complete", 30, f"{url} to load")
    errors = console_errors(browser)
    assert not errors, errors


def table_rows(browser: WebDriver, table_id: str) -> list[list[str]]:
    return [
        [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
        for row in browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
    ]


def shown_leaderboard(browser: WebDriver) -> list[tuple[int, str, str, str]]:
    """(architecture id, rank, cell string, accuracy) of every row on screen."""
    rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
    return [
        (
            int(row.get_attribute("data-architecture-id")),
            *[row.find_elements(By.TAG_NAME, "td")[i].text for i in (0, 1, 4)],
        )
        for row in rows
    ]


def expected_leaderboard(page: dict[str, Any]) -> list[tuple[int, str, str, str]]:
    return [(item["id"], str(item["rank"]), item["arch"], accuracy(item["accuracy"])) for item in page["items"]]


def test_the_leaderboard_shows_the_rows_the_api_returns_page_by_page(dashboard: Dashboard, browser: WebDriver) -> None:
    open_page(browser, f"{dashboard.base}/")
    first = dashboard.api("/v1/leaderboard", limit=PAGE_SIZE)
    assert first["total"] == CLASSES  # the three isomorphic cells are one row
    assert shown_leaderboard(browser) == expected_leaderboard(first)
    twins_row = next(item for item in first["items"] if item["arch"] in dashboard.twins)
    assert twins_row["members"] == 3
    assert browser.find_element(By.CSS_SELECTOR, ".pager .position").text == f"Rows 1–{PAGE_SIZE} of {CLASSES}"

    browser.find_element(By.LINK_TEXT, "Next →").click()
    wait_until(lambda: "offset=50" in browser.current_url, 30, "the second page")
    assert not console_errors(browser)
    second = dashboard.api("/v1/leaderboard", limit=PAGE_SIZE, offset=PAGE_SIZE)
    assert shown_leaderboard(browser) == expected_leaderboard(second)
    assert len(second["items"]) == CLASSES - PAGE_SIZE


def test_the_selectors_pick_the_configuration_and_the_preset(dashboard: Dashboard, browser: WebDriver) -> None:
    open_page(browser, f"{dashboard.base}/")
    other = dashboard.fingerprints[1]
    Select(browser.find_element(By.NAME, "preset")).select_by_visible_text("mission")
    wait_until(lambda: "preset=mission" in browser.current_url, 30, "the mission vote")
    assert "config=" not in browser.current_url  # a selector left at its default is not sent
    assert shown_leaderboard(browser) == expected_leaderboard(
        dashboard.api("/v1/leaderboard", limit=50, preset="mission")
    )
    assert "mission · mean_rank over snip, grasp, synflow" in browser.find_element(By.CSS_SELECTOR, ".summary").text

    Select(browser.find_element(By.NAME, "config")).select_by_value(other)
    wait_until(lambda: f"config={other}" in browser.current_url, 30, "the other configuration")
    assert not console_errors(browser)
    expected = dashboard.api("/v1/leaderboard", limit=50, preset="mission", config=other)
    assert expected["total"] == OTHER_CLASSES
    assert shown_leaderboard(browser) == expected_leaderboard(expected)


def test_a_selection_with_nothing_scored_is_an_empty_page_and_bad_input_is_shown_as_text(
    dashboard: Dashboard, browser: WebDriver
) -> None:
    open_page(browser, f"{dashboard.base}/?dataset=cifar100")
    assert "Nothing to show yet" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert not browser.find_elements(By.ID, "leaderboard")

    hostile = "<b>bold</b>"
    response = httpx.get(f"{dashboard.base}/", params={"preset": hostile})
    assert response.status_code == 422
    browser.get(f"{dashboard.base}/?preset=%3Cb%3Ebold%3C%2Fb%3E")
    notice = browser.find_element(By.CSS_SELECTOR, ".notice.error")
    assert hostile in notice.text
    assert not notice.find_elements(By.TAG_NAME, "b")
    (refused,) = console_errors(browser)  # Chromium logs the page's own 422, and nothing else
    assert "status of 422" in refused


def test_the_correlation_page_shows_the_report_and_a_point_per_observed_class(
    dashboard: Dashboard, browser: WebDriver
) -> None:
    open_page(browser, f"{dashboard.base}/correlations")
    report = dashboard.api("/v1/correlations")
    shown = table_rows(browser, "correlations")
    assert [row[0] for row in shown] == [*PRESETS["best"].proxies, "vote"]
    for row, entry in zip(shown, report["correlations"], strict=True):
        assert row[1] == str(entry["n"])
        assert row[2] == f"{entry['spearman_rho']:.3f}"
    assert report["observed"] == CLASSES

    points = browser.find_elements(By.CSS_SELECTOR, "#scatter .points circle")
    assert len(points) == CLASSES
    board = dashboard.api("/v1/leaderboard", limit=1000)
    linked = {
        int(a.get_dom_attribute("href").rsplit("/", 1)[1])
        for a in browser.find_elements(By.CSS_SELECTOR, "#scatter .points a")
    }
    assert linked == {item["id"] for item in board["items"]}
    best = min(board["items"], key=lambda item: item["vote_rank"])
    worst = max(board["items"], key=lambda item: item["vote_rank"])

    def x_of(architecture_id: int) -> float:
        circle = browser.find_element(By.CSS_SELECTOR, f'#scatter a[href="/architectures/{architecture_id}"] circle')
        return float(circle.get_attribute("cx"))

    assert x_of(best["id"]) < x_of(worst["id"])  # rank 1 on the left

    browser.find_element(By.CSS_SELECTOR, "details.png summary").click()
    image = browser.find_element(By.CSS_SELECTOR, "details.png img")
    wait_until(
        lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image),
        60,
        "the PNG",
    )
    assert not console_errors(browser)


def test_an_architecture_page_draws_the_cell_and_lists_scores_and_observations(
    dashboard: Dashboard, browser: WebDriver
) -> None:
    arch = dashboard.twins[0]
    (found,) = dashboard.api("/v1/architectures", arch=arch)["items"]
    detail = dashboard.api(f"/v1/architectures/{found['id']}")
    open_page(browser, f"{dashboard.base}/architectures/{found['id']}")
    assert browser.find_element(By.ID, "arch-string").text == arch

    edges = browser.find_elements(By.CSS_SELECTOR, "#cell-drawing g.edge")
    ops = nb201.parse(arch).ops
    drawn = [
        (int(e.get_attribute("data-target")), int(e.get_attribute("data-source")), e.get_attribute("data-op"))
        for e in edges
    ]
    assert drawn == [(target, source, op) for (target, source), op in zip(nb201.EDGES, ops, strict=True)]
    dead = {index for index, edge in enumerate(edges) if "dead" in edge.get_attribute("class").split()}
    assert dead == set(range(6)) - set(nb201.live_edges(arch))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#cell-drawing g.node")) == 4

    columns = browser.find_elements(By.CSS_SELECTOR, "#scores thead th[data-fingerprint]")
    assert [c.get_attribute("data-fingerprint") for c in columns] == [
        s["configuration"]["fingerprint"] for s in detail["scores"]
    ]
    shown = {row[0]: row[1:] for row in table_rows(browser, "scores")}
    for column, entry in enumerate(detail["scores"]):
        for proxy, score in entry["scores"].items():
            assert shown[proxy][column] == number(score["value"])

    observations = table_rows(browser, "observations")
    assert sorted((row[4], row[2]) for row in observations) == sorted(
        (o["source"], accuracy(o["accuracy"])) for o in detail["observations"]
    )
    assert HOSTILE_SOURCE in [row[4] for row in observations]  # as text, not as an element
    assert not browser.find_elements(By.CSS_SELECTOR, "#observations img")


def test_an_architecture_of_a_space_without_a_drawing_shows_its_text(dashboard: Dashboard, browser: WebDriver) -> None:
    with dashboard.database.session() as session:
        (stored,) = get_or_create_architectures(session, ensure_space(session, "nats_sss"), ["8:16:24:32:40"])
        architecture_id = stored.id
    open_page(browser, f"{dashboard.base}/architectures/{architecture_id}")
    assert browser.find_element(By.CSS_SELECTOR, "pre.arch-text").text == "8:16:24:32:40"
    assert not browser.find_elements(By.ID, "cell-drawing")
    assert "No scores are stored for this architecture yet." in browser.find_element(By.CSS_SELECTOR, "main").text


def test_the_search_box_finds_an_architecture_by_any_spelling(dashboard: Dashboard, browser: WebDriver) -> None:
    open_page(browser, f"{dashboard.base}/")
    arch = dashboard.twins[1]
    search = browser.find_element(By.CSS_SELECTOR, "form.find input")
    search.send_keys(f"  {arch} \n")
    wait_until(lambda: "/architectures/" in browser.current_url, 30, "the architecture's page")
    assert browser.find_element(By.ID, "arch-string").text == arch
    assert not console_errors(browser)

    malformed = httpx.get(
        f"{dashboard.base}/architectures", params={"arch": "|none~0|+|none~0|none~1|+|none~0|none~1|"}
    )
    assert malformed.status_code == 422
    assert "node group 3" in malformed.text and "has 2 input(s)" in malformed.text
    assert httpx.get(f"{dashboard.base}/architectures/999999").status_code == 404


def test_pages_are_public_html_with_a_content_security_policy_and_local_assets(dashboard: Dashboard) -> None:
    client = dashboard.server.client
    for path in ("/", "/correlations", "/batches", "/architectures/1"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "<script>" not in page.text and "http://" not in page.text and "https://" not in page.text
    for asset in ("/static/dashboard.css", "/static/dashboard.js", "/static/batches.js", "/static/favicon.svg"):
        assert client.get(asset).status_code == 200, asset
    assert client.get("/docs").status_code == 200
    assert client.get("/v1/leaderboard").status_code == 200


def test_a_server_that_needs_keys_for_reads_says_so_on_its_pages(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nasscore.db'}"
    with LiveServer(service_settings(tmp_path, url, auth="on", auth_reads=True)) as server:
        database = Database(url)
        reader = create_key(database, "reader", Scope.READ).token
        database.dispose()
        page = server.client.get("/batches", headers={"Authorization": f"Bearer {reader}"})
        assert page.status_code == 401
        assert "--auth-reads" in page.text
        whoami = server.client.get("/dashboard/whoami", headers={"Authorization": f"Bearer {reader}"})
        assert whoami.json() == {"auth": "on", "name": "reader", "scope": "read"}

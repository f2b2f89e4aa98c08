"""The console in Debian's Chromium: sign in by keyboard, walk every page, act (republish a dead letter,
accept a drift, edit a control entry, look up a feature, search vectors) and compare what the page
shows with what the API answers. No dialog may open and no console error may appear (a CSP violation
is one), and hostile names must show as text. Screenshots of each page go to docs/console/."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from aietl.services.console.session import CONTENT_SECURITY_POLICY
from aietl.services.runtime import Runtime
from aietl.shared.bus import publish_event
from aietl.shared.events import Drift, DriftDetected, SuggestedMapping
from tests.conftest import ADMIN_PASSWORD
from tests.console.conftest import (
    HOSTILE_IMG,
    HOSTILE_SCRIPT,
    PASSWORD,
    SCREENSHOTS,
    Seeded,
    login_nonce,
    new_member,
)
from tests.support import eventually

pytestmark = pytest.mark.timeout(600)
VIEWPORT = {"width": 1280, "height": 800}
WIDE_ELEMENTS = """[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > innerWidth)
  .filter(e => { for (let p = e.parentElement; p; p = p.parentElement) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(p).overflowX)) return false; }
    return true; })
  .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + (e.textContent || '').slice(0, 40))"""


@dataclass
class Watched:
    """A browser page and everything that must not happen on it."""

    page: Any
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def forgive_refusals(self) -> None:
        """Forget the browser's reports of 4xx answers the test provoked on purpose (and only those)."""
        self.errors = [e for e in self.errors if not re.search(r"status of 4\d\d", e)]

    def assert_clean(self) -> None:
        assert self.dialogs == [], f"a dialog opened: {self.dialogs}"
        assert self.errors == [], f"console errors: {self.errors}"


@pytest.fixture
async def open_page(browser: Any) -> AsyncIterator[Any]:
    contexts = []

    async def opened(viewport: dict[str, int] = VIEWPORT) -> Watched:
        context = await browser.new_context(viewport=viewport)
        contexts.append(context)
        page = await context.new_page()
        watched = Watched(page)

        async def on_dialog(dialog: Any) -> None:
            watched.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on(
            "console",
            lambda message: watched.errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: watched.errors.append(str(error)))
        return watched

    yield opened
    for context in contexts:
        await context.close()


async def sign_in(watched: Watched, base: str, username: str, password: str, then: str = "/console/") -> None:
    page = watched.page
    await page.goto(f"{base}{then}")
    await page.wait_for_url(re.compile(r"/console/login"))
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("button[type=submit]")
    await page.wait_for_selector("main h1")


async def shot(page: Any, name: str, *, top: bool = True, at: str | None = None) -> None:
    """A 1280x800 picture for docs/console.md: from the top of the page, from the element `at`, or
    (top=False) where the page is scrolled now."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if at is not None:
        await page.locator(at).evaluate("element => element.scrollIntoView()")
    elif top:
        await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def no_markup_injected(html: str) -> None:
    """The hostile strings appear only escaped: never as a live element."""
    assert "<img src=x" not in html and "<script>alert(1)" not in html


async def test_sign_in_by_keyboard_then_walk_the_navigation(
    open_page: Any, console_url: str, seeded: Seeded
) -> None:
    watched = await open_page()
    page = watched.page
    await page.goto(f"{console_url}/console/drift")
    await page.wait_for_url(re.compile(r"/console/login\?next=/console/drift"))
    await shot(page, "login")
    assert await page.evaluate("document.activeElement.id") == "username"  # autofocus
    await page.keyboard.type(seeded.username)
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "password"
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Sign in"
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/console/drift$"))
    assert await page.inner_text("main h1") == "Schema drift"

    await page.goto(f"{console_url}/console/")
    focused = []
    for _ in range(8):
        await page.keyboard.press("Tab")
        focused.append((await page.evaluate("document.activeElement.textContent")).strip())
    assert focused == [
        "Skip to content",
        "AI-ETL console",
        "Overview",
        "Drift",
        "Features",
        "Pipelines",
        "Maintenance",
        "Vectors",
    ]
    for label, heading in [
        ("Drift", "Schema drift"),
        ("Features", "Feature store"),
        ("Pipelines", "Pipelines"),
        ("Maintenance", "Predictive maintenance"),
        ("Vectors", "Vectors"),
        ("Overview", "Overview"),
    ]:
        await page.get_by_role("navigation", name="Main").get_by_role("link", name=label).click()
        await page.wait_for_function("h => document.querySelector('main h1')?.textContent === h", arg=heading)
        assert await page.get_attribute(f"nav a:text-is('{label}')", "aria-current") == "page"

    # signing out and in again gives a new session whose forms work at once (no stale CSRF token)
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(re.compile(r"/console/login$"))
    await sign_in(watched, console_url, seeded.username, PASSWORD, then="/console/drift")
    await page.fill("#policy-connector", "crm-keyboard")
    await page.select_option("#policy-low", "alert")
    await page.get_by_role("button", name="Save policy").click()
    await page.wait_for_selector("p.notice")
    assert "crm-keyboard" in await page.inner_text("#policies")
    watched.assert_clean()


async def test_overview_shows_processes_and_lag_and_republishes_a_dead_letter(
    open_page: Any, console_url: str, seeded: Seeded, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    watched = await open_page()
    page = watched.page
    await sign_in(
        watched, console_url, "admin", ADMIN_PASSWORD, then=f"/console/?project_id={seeded.project}"
    )
    processes = (await client.get("/api/v1/ops/processes", headers=auth)).json()
    for role in processes["roles"]:
        tile = page.locator(f"#roles li[data-role='{role['role']}']")
        assert role["status"] in await tile.inner_text()
    assert await page.locator("svg.hbars").count() == 1
    html = await page.content()
    no_markup_injected(html)

    letter = page.locator("li.letter", has_text=seeded.dead_letter_marker).first
    await letter.locator("summary").click()
    assert HOSTILE_IMG in await letter.locator("pre.value").inner_text()  # shown as text
    await shot(page, "overview")
    await shot(page, "overview-dead-letter", top=False)
    original = json.loads(await letter.locator("textarea").input_value())
    fixed = {**original, "columns": [{"name": "id", "type": "bigint"}]}
    await letter.locator("textarea").fill(json.dumps(fixed))
    await letter.get_by_role("button", name=re.compile("Republish")).click()
    await page.wait_for_selector("p.notice")
    assert "queued" in await page.inner_text("p.notice")

    answer = await client.get(
        "/api/v1/ops/dead-letters",
        params={"project_id": seeded.project, "topic": "schema.observed"},
        headers=auth,
    )
    [shown] = [
        x for x in answer.json()["topics"][0]["letters"] if seeded.dead_letter_marker in x["original_value"]
    ]
    assert shown["republished_by"] == "admin"
    watched.assert_clean()


async def test_drift_page_matches_the_api_and_accepts_a_drift(
    open_page: Any, console_url: str, seeded: Seeded, client: httpx.AsyncClient
) -> None:
    api = "/api/v1/advanced/schema-drift"
    watched = await open_page()
    page = watched.page
    await sign_in(watched, console_url, seeded.username, PASSWORD, then="/console/drift")
    baselines = (await client.get(f"{api}/baselines", headers=seeded.headers)).json()
    rows = page.locator("#baselines tbody tr")
    assert await rows.count() == len(baselines)
    assert await page.get_by_role("link", name=seeded.drift_table).count() == 1  # the hostile name, as text
    assert await page.locator("svg.timeline circle.mark").count() >= 1
    no_markup_injected(await page.content())
    await shot(page, "drift")

    await page.get_by_role("link", name=seeded.drift_table).click()
    await page.wait_for_selector("#diff")
    await page.select_option("#older", "1")
    renamed = page.locator("#diff tr[data-kind='renamed']")
    assert await renamed.count() == 0  # one version only: nothing to compare yet
    await page.goto(f"{console_url}/console/drift")

    card = page.locator(f"#detection-{seeded.detection_id}")
    assert "customer_full_name" in await card.inner_text()
    await card.get_by_role("button", name="Accept the checked drifts").click()
    await page.wait_for_selector("p.notice")
    detection = (await client.get(f"{api}/detections/{seeded.detection_id}", headers=seeded.headers)).json()
    assert detection["status"] == "adapted" and detection["new_version"] == 2

    await page.get_by_role("link", name=seeded.drift_table).click()
    await page.wait_for_selector("#diff")
    renamed = page.locator("#diff tr[data-kind='renamed']")
    assert "renamed customer_name → customer_full_name" in await renamed.inner_text()
    changed = page.locator("#diff tr[data-kind='changed']")
    assert "widening" in await changed.inner_text() and "low" in await changed.inner_text()
    await shot(page, "drift-diff", top=False)
    watched.assert_clean()


async def test_features_registry_lookup_and_point_in_time_preview(
    open_page: Any, console_url: str, seeded: Seeded, client: httpx.AsyncClient
) -> None:
    api = "/api/v1/advanced/features"
    watched = await open_page()
    page = watched.page
    await sign_in(watched, console_url, seeded.username, PASSWORD, then="/console/features")
    listed = (await client.get(f"{api}/features", headers=seeded.headers)).json()["features"]
    shown = await page.locator("#registry tbody tr td:first-child a").all_inner_texts()
    assert sorted(shown) == sorted(f["name"] for f in listed)
    assert "growth-team" in await page.inner_text("#registry") and "fresh" in await page.inner_text(
        "#registry"
    )
    assert await page.locator("svg.graph g.node").count() >= 4  # source, pipeline, view, features

    await page.fill("#lookup-entities", "c-1")
    await page.locator("#lookup-heading ~ form").get_by_label(seeded.feature).check()
    await page.locator("#lookup-heading ~ form").get_by_role("button", name="Look up").click()
    await page.wait_for_selector("#lookup-result table")
    online = (
        await client.post(
            f"{api}/get-online",
            json={"feature_names": [seeded.feature], "entity_ids": ["c-1"]},
            headers=seeded.headers,
        )
    ).json()["feature_vectors"][0]
    cell = await page.inner_text("#lookup-result tbody td")
    assert cell.startswith(str(online["features"][seeded.feature])) and "present" in cell

    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
    await page.fill("#preview-rows", f"c-1, {an_hour_ago}")
    await page.locator("#preview-heading ~ form").get_by_label(seeded.feature).check()
    await page.locator("#preview-heading ~ form").get_by_role("button", name="Preview").click()
    await page.wait_for_selector("#preview-result table")
    historical = (
        await client.post(
            f"{api}/historical",
            json={
                "feature_names": [seeded.feature],
                "entity_rows": [{"entity_id": "c-1", "timestamp": an_hour_ago}],
            },
            headers=seeded.headers,
        )
    ).json()["rows"][0]
    assert await page.inner_text("#preview-result tbody td:nth-child(3)") == str(
        historical["features"][seeded.feature]
    )
    assert historical["features"][seeded.feature] == 3  # as of an hour ago, not the newest value
    no_markup_injected(await page.content())
    await shot(page, "features")
    watched.assert_clean()


async def test_pipelines_edit_a_control_entry_and_dry_run(
    open_page: Any, console_url: str, seeded: Seeded, client: httpx.AsyncClient
) -> None:
    api = "/api/v1/advanced/templates"
    watched = await open_page()
    page = watched.page
    await sign_in(watched, console_url, seeded.username, PASSWORD, then="/console/pipelines")
    assert HOSTILE_SCRIPT in await page.inner_text("#control-table")
    no_markup_injected(await page.content())

    await page.get_by_role("button", name=re.compile("Dry run")).click()
    await page.wait_for_selector("#generated article")
    assert await page.locator("#generated .highlight span").count() > 5  # highlighted SQL
    dry = (await client.post(f"{api}/generate", json={"dry_run": True}, headers=seeded.headers)).json()
    assert f"{dry['valid']} valid, {dry['invalid']} invalid" in await page.inner_text("#generated h3")
    await shot(page, "pipelines", top=False)

    await page.get_by_role("link", name=re.compile("^Edit ")).first.click()
    await page.wait_for_selector("#entry-form")
    await page.fill("#schedule", "0 3 * * *")
    await page.fill("#schedule_timezone", "Europe/Paris")
    await page.get_by_role("button", name="Save entry").click()
    await page.wait_for_selector("p.notice")
    entry = (await client.get(f"{api}/control-table/{seeded.entry_id}", headers=seeded.headers)).json()
    assert (entry["schedule"], entry["schedule_timezone"]) == ("0 3 * * *", "Europe/Paris")
    assert entry["keys"] == ["id"] and entry["watermark_column"] == "seq"  # untouched fields kept

    await page.get_by_role("link", name=re.compile("^Edit ")).first.click()
    await page.fill("#config", "{not json")
    await page.get_by_role("button", name="Save entry").click()
    await page.wait_for_selector("p.problem")
    assert "config: not valid JSON" in await page.inner_text("p.problem")
    watched.forgive_refusals()
    watched.assert_clean()


async def test_pipelines_show_runs_and_the_drift_that_regenerated_a_pipeline(
    open_page: Any, console_url: str, seeded: Seeded, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    api = "/api/v1/advanced/templates"
    watched = await open_page()
    page = watched.page
    await sign_in(watched, console_url, seeded.username, PASSWORD, then="/console/pipelines")
    await page.get_by_role("button", name="Generate pipelines").click()
    await page.wait_for_selector("#generated article a")
    [instance] = (await client.get(f"{api}/instances", headers=seeded.headers)).json()
    run = (await client.post(f"{api}/instances/{instance['instance_id']}/run", headers=seeded.headers)).json()

    # the source gains a column and drift accepts it: the templates worker regenerates the pipeline
    drift = DriftDetected(
        project_id=seeded.project,
        connector_id=instance["source_system"],
        table_name=instance["source_object"],
        observed_event_id=uuid.uuid4(),
        baseline_version=1,
        new_version=2,
        before_hash="a",
        after_hash="b",
        strategy="auto_adapt",
        status="adapted",
        drifts=[
            Drift(
                drift_type="new_column",
                column_name="email",
                severity="low",
                confidence_score=1.0,
                suggested_mapping=SuggestedMapping(
                    auto_include=True, target_column="email", target_type="TEXT"
                ),
            )
        ],
    )
    await publish_event(runtime.broker, drift)

    async def regenerated() -> bool:
        versions = await client.get(
            f"{api}/instances/{instance['instance_id']}/versions", headers=seeded.headers
        )
        return any(v["drift_event_id"] == str(drift.event_id) for v in versions.json())

    await eventually(regenerated, timeout=60)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Pipelines").click()
    row = page.locator("#regenerated tbody tr", has_text=str(drift.event_id))
    assert instance["pipeline_name"] in await row.inner_text()

    await row.get_by_role("link", name=instance["pipeline_name"]).click()
    await page.wait_for_selector("#runs")
    cells = await page.locator(f"#runs tr[data-run-id='{run['run_id']}'] td").all_inner_texts()
    assert cells[1] == run["status"] and cells[2] == "manual"
    assert cells[3] == str(run["rows_read"]) and cells[4] == str(run["rows_written"])
    assert cells[5] == f"{run['duration_seconds']:,.3f} s"
    assert "drift adaptation" in await page.inner_text("#instance-versions")
    assert await page.locator(".highlight span").count() > 5  # the generated SQL, highlighted
    no_markup_injected(await page.content())
    await shot(page, "pipeline")
    watched.assert_clean()


async def test_predictive_maintenance_board_forecast_and_window(
    open_page: Any, console_url: str, seeded: Seeded, client: httpx.AsyncClient
) -> None:
    api = "/api/v1/advanced/predict"
    watched = await open_page()
    page = watched.page
    await sign_in(watched, console_url, seeded.username, PASSWORD, then="/console/predict")
    shown = await page.locator("#risk-board tbody tr td:first-child").all_inner_texts()
    summary = (await client.get("/api/v1/ops/pipeline-runs", headers=seeded.headers)).json()
    listed = [p["pipeline_id"] for p in summary["pipelines"]]  # the simulated ones and any run here since
    assert set(seeded.pipelines) <= set(listed)
    probabilities = {}
    for pipeline in listed:
        answer = await client.get(
            f"{api}/failure/{pipeline}", params={"horizon_hours": 24}, headers=seeded.headers
        )
        # a pipeline without enough history has no prediction (409) and goes last
        probabilities[pipeline] = answer.json()["failure_probability"] if answer.status_code == 200 else -1.0
    assert shown == sorted(listed, key=lambda p: -probabilities[p])
    assert await page.locator("svg.bars rect.bar").count() >= 10
    await shot(page, "predict")

    await page.get_by_role("link", name=shown[0]).click()
    await page.wait_for_selector("svg.forecast")
    assert await page.locator("svg.forecast polyline.history").count() == 1
    assert await page.locator("svg.forecast polygon.band").count() == 1
    window = (
        await client.get(
            f"{api}/maintenance-window/{shown[0]}", params={"duration_hours": 2}, headers=seeded.headers
        )
    ).json()
    assert await page.inner_text("#window-label") == window["window"]
    assert await page.locator("svg.week rect.cell.chosen").count() == 2
    await shot(page, "predict-pipeline", at="#forecast-heading")
    watched.assert_clean()


async def test_vectors_status_and_search_playground(
    open_page: Any, console_url: str, seeded: Seeded, client: httpx.AsyncClient
) -> None:
    watched = await open_page()
    page = watched.page
    await sign_in(watched, console_url, seeded.username, PASSWORD, then="/console/vectors")
    row = page.locator("#collections tbody tr", has_text=seeded.collection)
    cells = await row.locator("td").all_inner_texts()
    assert cells[2] == "3" and int(cells[3]) >= 3
    shown = (
        await client.get(
            "/api/v1/ops/vectors/collections", params={"project_id": seeded.project}, headers=seeded.headers
        )
    ).json()["collections"]
    [handbook] = [c for c in shown if c["collection"] == seeded.collection]
    assert (handbook["cache_hits"], handbook["cache_lookups"]) == (1, 3)  # seeded: one relabelled chunk
    assert cells[4:6] == ["1 of 3", "33.3%"]
    await page.fill("#collection", seeded.collection)
    await page.fill("#query", "returns policy")
    await page.fill("#top_k", "3")
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_selector("#search-result ol.hits li")
    answer = (
        await client.post(
            "/api/v1/advanced/vectors/search",
            json={
                "connector_id": seeded.connector,
                "collection": seeded.collection,
                "query": "returns policy",
                "top_k": 3,
            },
            headers=seeded.headers,
        )
    ).json()
    ids = await page.locator("#search-result ol.hits code").all_inner_texts()
    scores = await page.locator("#search-result ol.hits .score").all_inner_texts()
    assert ids == [hit["id"] for hit in answer["hits"]]
    assert scores == [f"{hit['score']:.4f}" for hit in answer["hits"]]
    chunks = " ".join(await page.locator("#search-result .chunk").all_inner_texts())
    assert HOSTILE_SCRIPT in chunks  # the document's markup, shown as text
    no_markup_injected(await page.content())
    await shot(page, "vectors", at="#search-heading")

    await page.fill("#filter", '{"lang": ')
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_selector("#search-result p.problem")
    assert "filter: not valid JSON" in await page.inner_text("#search-result p.problem")
    watched.forgive_refusals()
    watched.assert_clean()


async def test_a_member_of_another_project_sees_none_of_it(
    open_page: Any, console_url: str, seeded: Seeded, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    outsider = await new_member(client, auth, "outsider")
    watched = await open_page()
    page = watched.page
    await sign_in(
        watched, console_url, outsider.username, PASSWORD, then=f"/console/drift?project_id={seeded.project}"
    )
    assert await page.locator("#project-switcher").count() == 0
    assert outsider.project in await page.inner_text("header .project")
    body = await page.inner_text("main")
    assert "orders" not in body and seeded.project not in body
    for path in ("/console/features", "/console/vectors", "/console/pipelines", "/console/"):
        await page.goto(f"{console_url}{path}?project_id={seeded.project}")
        text = await page.inner_text("main")
        assert (
            seeded.feature not in text
            and seeded.connector not in text
            and seeded.dead_letter_marker not in text
        )
    await page.goto(f"{console_url}/console/pipelines/control/{seeded.entry_id}?project_id={seeded.project}")
    assert "Not available" in await page.inner_text("h1")
    watched.forgive_refusals()  # the 404 is the point
    watched.assert_clean()


async def test_narrow_window_needs_no_sideways_scrolling(
    open_page: Any, console_url: str, seeded: Seeded
) -> None:
    watched = await open_page({"width": 390, "height": 800})
    page = watched.page
    await sign_in(watched, console_url, seeded.username, PASSWORD, then="/console/predict")
    for path in (
        "/console/",
        "/console/drift",
        "/console/features",
        "/console/pipelines",
        "/console/predict",
        "/console/vectors",
    ):
        await page.goto(f"{console_url}{path}")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width, await page.evaluate(WIDE_ELEMENTS))
    await shot(page, "narrow-predict")
    watched.assert_clean()


async def test_state_changes_need_the_csrf_token_and_responses_carry_the_policy(
    console_url: str, seeded: Seeded
) -> None:
    async with httpx.AsyncClient(base_url=console_url, follow_redirects=False) as http:
        form = await http.get("/console/login")
        assert form.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        forged = await http.post(
            "/console/login", data={"username": seeded.username, "password": PASSWORD, "login_nonce": "x"}
        )
        assert forged.status_code == 403  # the nonce must match the login cookie (login CSRF)
        nonce = login_nonce(forged.text)
        signed = await http.post(
            "/console/login", data={"username": seeded.username, "password": PASSWORD, "login_nonce": nonce}
        )
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert (
            "HttpOnly" in cookie
            and "SameSite=strict" in cookie.replace("Strict", "strict")
            and "Path=/console" in cookie
        )
        page = await http.get("/console/drift")
        assert page.status_code == 200 and page.headers["x-frame-options"] == "DENY"
        token = re.findall(r'name="csrf_token" value="([^"]+)"', page.text)[0]

        for sent in ({}, {"csrf_token": "0" * 64}):
            refused = await http.post(
                "/console/drift/policy", data={"connector_id": "*", "table_name": "*", **sent}
            )
            assert refused.status_code == 403 and "CSRF" in refused.text
        refused = await http.post("/console/logout", headers={"X-CSRF-Token": "nope"})
        assert refused.status_code == 403
        accepted = await http.post(
            "/console/drift/policy",
            data={"connector_id": "*", "table_name": "*", "strategy_low": "alert", "csrf_token": token},
        )
        assert accepted.status_code == 303
        policies = (await http.get("/console/drift")).text
        assert "alert" in policies
        out = await http.post("/console/logout", headers={"X-CSRF-Token": token})
        assert out.status_code == 303 and 'aietl_console=""' in out.headers["set-cookie"]

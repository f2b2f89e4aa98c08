"""The console without a browser: sign-in, every page answers for a member, CSRF and security headers."""

from __future__ import annotations

import re

import httpx

from tests.conftest import ADMIN_PASSWORD
from tests.console.conftest import PASSWORD, Seeded, login_nonce

PAGES = [
    "/console/",
    "/console/drift",
    "/console/features",
    "/console/pipelines",
    "/console/predict",
    "/console/vectors",
]


async def _signed_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Cookies:
    form = await client.get("/console/login")
    nonce = login_nonce(form.text)
    answer = await client.post(
        "/console/login",
        data={"username": username, "password": password, "login_nonce": nonce, "next": "/console/"},
        cookies=form.cookies,
    )
    assert answer.status_code == 303, answer.text
    return answer.cookies


async def test_every_page_answers_with_the_security_headers(client: httpx.AsyncClient) -> None:
    cookies = await _signed_in(client, "admin", ADMIN_PASSWORD)
    for page in PAGES:
        response = await client.get(page, cookies=cookies)
        assert response.status_code == 200, (page, response.text[:2000])
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "<script>" not in response.text and " style=" not in response.text


async def test_vectors_page_shows_each_collections_cache_hits(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    cookies = await _signed_in(client, seeded.username, PASSWORD)
    page = await client.get("/console/vectors", cookies=cookies)
    assert page.status_code == 200, page.text[:2000]
    rows = re.findall(r"<tr>(.*?)</tr>", page.text, re.S)
    [row] = [r for r in rows if f"<td>{seeded.collection}</td>" in r]
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    # documents, chunks, cache hits of lookups, hit rate: the seeded relabelled chunk was a cache hit
    assert cells[2] == "3" and cells[4:6] == ["1 of 3", "33.3%"], cells

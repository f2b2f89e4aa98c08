"""Optional LLM analyser: a plain-language review of a detection by an OpenAI-compatible endpoint.

Off unless `AIETL_DRIFT_LLM_URL` is set. It never decides anything: detection, renames and
policies stay offline and deterministic; the analysis is advice stored next to the detection.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from aietl.shared.errors import Unavailable
from aietl.shared.settings import Settings

TIMEOUT_SECONDS = 30.0
PROMPT = (
    "You review schema drift in a data pipeline. Given the baseline columns, the observed columns and "
    "the drifts a deterministic detector found, say in at most 120 words whether any detected rename "
    "looks wrong, which drifts are risky for downstream consumers, and what to do."
)


class AnalyserUnavailableError(Unavailable):
    """No endpoint is configured, or it did not answer usefully."""


def enabled(settings: Settings) -> bool:
    return settings.drift_llm_url is not None


async def analyse(
    settings: Settings,
    baseline: list[dict[str, Any]],
    observed: list[dict[str, Any]],
    drifts: list[dict[str, Any]],
) -> str:
    if settings.drift_llm_url is None:
        raise AnalyserUnavailableError("the LLM analyser is not configured (AIETL_DRIFT_LLM_URL)")
    headers = {}
    if settings.drift_llm_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.drift_llm_api_key.get_secret_value()}"
    payload = {
        "model": settings.drift_llm_model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": PROMPT},
            {
                "role": "user",
                "content": json.dumps({"baseline": baseline, "observed": observed, "drifts": drifts}),
            },
        ],
    }
    url = settings.drift_llm_url.rstrip("/") + "/chat/completions"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            response = await client.post(url, json=payload, headers=headers)
            response.raise_for_status()
            return str(response.json()["choices"][0]["message"]["content"]).strip()
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as error:
        raise AnalyserUnavailableError(f"the LLM endpoint failed: {type(error).__name__}") from None

"""Rendering off the event loop: a small pool of child processes, each call bounded in time and memory.

A template, its JSON Schema and the config are user input: a loop over `range`, a string grown by
`center(10**9)` or a pathological regular expression is CPU and memory the request controls. The
pool's children run `domain.preparation`; a call past `AIETL_TEMPLATES_RENDER_TIMEOUT_SECONDS`
gets its child killed and answers 422, a child out of its `AIETL_TEMPLATES_RENDER_MEMORY_MB`
answers 422 too, and the gateway keeps answering meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aietl.services.templates.domain import preparation
from aietl.services.templates.domain.generation import PipelineNames
from aietl.services.templates.domain.model import InvalidConfig, SqlDialect, TemplateError
from aietl.services.templates.domain.rendering import Rendered, Statement
from aietl.shared.child_process import ChildDied, ChildPool, ChildTimeout
from aietl.shared.settings import Settings

T = TypeVar("T")


class Renderer:
    def __init__(self, settings: Settings) -> None:
        self.timeout = settings.templates_render_timeout_seconds
        self._pool = ChildPool(
            settings.templates_render_workers,
            memory_limit=settings.templates_render_memory_mb * 1_048_576,
            setup="aietl.services.templates.domain.preparation:warm_up",
            name="template renderer",
        )

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        try:
            return await self._pool.call(function, *args, timeout=self.timeout)
        except (InvalidConfig, TemplateError):
            raise
        except ChildTimeout:
            raise TemplateError(f"rendering took longer than {self.timeout:g} s and was stopped") from None
        except (ChildDied, MemoryError):
            raise TemplateError("rendering needed more memory than a render may use") from None
        except Exception as error:  # user input broke something: a 4xx naming it
            raise TemplateError(f"template could not be prepared: {type(error).__name__}: {error}") from None

    async def check_template(self, config_schema: dict[str, Any], code: str) -> None:
        await self._call(preparation.checked_template, config_schema, code)

    async def prepare(
        self,
        config_schema: dict[str, Any],
        code: str,
        dialect: SqlDialect,
        pattern: str,
        config: Any,
        names: PipelineNames,
    ) -> tuple[dict[str, Any], Rendered]:
        return await self._call(preparation.prepared, config_schema, code, dialect, pattern, config, names)

    async def runnable(
        self, code: str, dialect: SqlDialect, pattern: str, config: dict[str, Any], names: PipelineNames
    ) -> tuple[Statement, ...]:
        return await self._call(preparation.runnable, code, dialect, pattern, config, names)

    async def close(self) -> None:
        await self._pool.close()

"""Syntax highlighting on the server (Pygments): spans with classes (the stylesheet colours them), the
code itself escaped by Pygments, so the result is safe markup under the console's CSP."""

from __future__ import annotations

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import SqlJinjaLexer, SqlLexer

_formatter = HtmlFormatter(cssclass="highlight", wrapcode=True)
MAX_CHARACTERS = 200_000


def sql(code: str) -> Markup:
    return _markup(code, SqlLexer())


def sql_template(code: str) -> Markup:
    """A Jinja2 template of SQL (a pipeline template's code)."""
    return _markup(code, SqlJinjaLexer())


def _markup(code: str, lexer: SqlLexer | SqlJinjaLexer) -> Markup:
    # Pygments escapes every character of `code` that HTML gives meaning to.
    return Markup(highlight(code[:MAX_CHARACTERS], lexer, _formatter))  # noqa: S704

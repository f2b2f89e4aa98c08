"""Splitting a document's text into overlapping chunks along Markdown sections and paragraphs. No I/O."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ChunkingPolicy:
    """Chunks hold at most `size` characters of new text plus `overlap` characters of the previous one."""

    size: int = 1_000
    overlap: int = 150
    markdown: bool = True

    def __post_init__(self) -> None:
        if self.size < 16 or not 0 <= self.overlap < self.size:
            raise ValueError("chunking needs size >= 16 and 0 <= overlap < size")

    def key(self) -> str:
        return f"{self.size}/{self.overlap}/{int(self.markdown)}"


_HEADING = re.compile(r"^#{1,6}\s")
_FENCE = re.compile(r"^(```|~~~)")


def _markdown_blocks(text: str) -> Iterator[tuple[bool, str]]:
    """Yield (starts_section, block): headings open sections, fenced code stays one block."""
    lines = text.splitlines()
    block: list[str] = []
    in_fence = False
    starts_section = False

    def flush() -> Iterator[tuple[bool, str]]:
        nonlocal block, starts_section
        joined = "\n".join(block).strip()
        if joined:
            yield starts_section, joined
        block, starts_section = [], False

    for line in lines:
        if _FENCE.match(line.strip()):
            if not in_fence:
                yield from flush()
            block.append(line)
            in_fence = not in_fence
            if not in_fence:
                yield from flush()
            continue
        if in_fence:
            block.append(line)
        elif _HEADING.match(line):
            yield from flush()
            block, starts_section = [line], True
        elif not line.strip():
            heading_only = starts_section and len(block) == 1
            if not heading_only:
                yield from flush()
        else:
            block.append(line)
    yield from flush()


def _plain_blocks(text: str) -> Iterator[tuple[bool, str]]:
    for paragraph in re.split(r"\n\s*\n", text):
        if paragraph.strip():
            yield False, paragraph.strip()


def _windows(text: str, size: int) -> Iterator[str]:
    """Split a long block at word boundaries into pieces of at most `size` characters."""
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + size // 2, end)
            end = cut if cut > start else end
        piece = text[start:end].strip()
        if piece:
            yield piece
        start = end


def _tail(text: str, overlap: int) -> str:
    """The last `overlap` characters of a chunk, starting at a word boundary."""
    if overlap == 0 or len(text) <= overlap:
        return text if overlap else ""
    tail = text[-overlap:]
    space = tail.find(" ")
    return tail[space + 1 :] if 0 <= space < len(tail) - 1 else tail


def chunk_text(text: str, policy: ChunkingPolicy) -> list[str]:
    """Pack paragraphs into chunks of `policy.size`; headings start a new chunk; chunks overlap."""
    blocks = _markdown_blocks(text) if policy.markdown else _plain_blocks(text)
    packed: list[tuple[bool, str]] = []  # (continues the previous chunk's section, text)
    current, continues = "", False
    for starts_section, block in blocks:
        if current and (starts_section or len(current) + 2 + len(block) > policy.size):
            packed.append((continues, current))
            current = ""
        if not current:
            continues = bool(packed) and not starts_section
        for piece in _windows(block, policy.size) if len(block) > policy.size else [block]:
            if current and len(current) + 2 + len(piece) > policy.size:
                packed.append((continues, current))
                current, continues = "", True
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        packed.append((continues, current))
    chunks: list[str] = []
    for position, (continues, body) in enumerate(packed):
        if position and continues and policy.overlap:
            body = f"{_tail(packed[position - 1][1], policy.overlap)}\n\n{body}"
        chunks.append(body)
    return chunks

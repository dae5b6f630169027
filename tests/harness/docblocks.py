"""The fenced blocks of docs/*.md, read from the doc text for the tests that check them.

A block that a real program reads is marked in its fence's info string with
the word ``checked``, after the language, and its first line is a comment
naming the file it is::

    ```ini checked
    # /etc/systemd/system/fswl.service
    [Unit]
    ...

Renderers use only the first word (the language); a doc author sees from the
fence that tests/test_doc_snippets.py feeds the block to the program that reads
that file (postconf, rspamadm, spamassassin, systemd-analyze, cron's shell,
sshd, nsd-checkzone).
Every ```toml block is a piece of fswl.toml: tests/test_configuration_doc.py
loads each one as fswl does, with no mark needed. The tests never keep a copy
of a snippet: they take it from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"
#: The word of an info string that marks a block as checked by the tools that read it.
CHECKED = "checked"

_FENCE = re.compile(r"^( *)(```+)(.*)$")


@dataclass(frozen=True)
class Block:
    doc: str  #: the file name under docs/
    line: int  #: the line of the opening fence, from 1
    info: tuple[str, ...]  #: the words of the info string
    text: str  #: the lines between the fences, indentation removed, ending in a newline

    @property
    def lang(self) -> str:
        return self.info[0] if self.info else ""

    @property
    def checked(self) -> bool:
        return CHECKED in self.info[1:]

    @property
    def file(self) -> str | None:
        """The file named by a first line ``# NAME`` or ``# NAME: what it is`` (``;`` in a zone file); else None."""
        first = self.text.split("\n", 1)[0]
        found = re.match(r"[#;] (\S+?):?(?:\s|$)", first)
        return found.group(1) if found else None

    def __str__(self) -> str:
        return f"docs/{self.doc}:{self.line}"


def blocks(doc: str) -> list[Block]:
    """Every fenced block of docs/DOC, in order."""
    found: list[Block] = []
    opened: tuple[int, str, str, tuple[str, ...]] | None = None
    body: list[str] = []
    for number, line in enumerate((DOCS / doc).read_text().splitlines(), 1):
        fence = _FENCE.match(line)
        if opened is None:
            if fence:
                opened = (number, fence.group(1), fence.group(2), tuple(fence.group(3).split()))
                body = []
            continue
        start, indent, ticks, info = opened
        if fence and fence.group(2) == ticks and not fence.group(3).strip():
            found.append(Block(doc, start, info, "".join(b.removeprefix(indent) + "\n" for b in body)))
            opened = None
        else:
            body.append(line)
    assert opened is None, f"docs/{doc}:{opened[0]}: a fenced block is never closed"
    return found


def all_blocks() -> list[Block]:
    return [block for path in sorted(DOCS.glob("*.md")) for block in blocks(path.name)]


def checked(doc: str, file: str) -> list[Block]:
    """The checked blocks of docs/DOC that are FILE (fails when there is none: the doc lost its snippet)."""
    found = [b for b in blocks(doc) if b.checked and b.file == file]
    assert found, f"docs/{doc} has no block marked '{CHECKED}' whose first line is '# {file}'"
    return found

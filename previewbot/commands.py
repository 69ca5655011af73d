"""The `/preview …` commands people type in pull-request comments, and the help that lists them.

A command is a line of its own that starts with `/preview`, a verb and its arguments. Only
text a reader sees as prose counts: lines in code (fenced, indented or inline), in block
quotes and in HTML comments are someone showing or quoting a command, not giving one, so
previewbot never acts on them.

Pure: text in, records out. What a user typed is never copied into a reply, so a comment
cannot make previewbot say anything but its own words.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

PREFIX = "/preview"

VERBS: Mapping[str, str] = MappingProxyType(
    {
        "redeploy": "Deploy the pull request's current head again.",
        "retest": "Run the end-to-end tests again against the ready preview of the head, without a redeploy.",
        "destroy": "Tear this pull request's preview down.",
        "status": "Reply with the preview's current state and URL.",
        "help": "List these commands.",
        "approve": "Let a pull request from a fork get a preview of its current head (maintainers).",
    }
)
"""Every verb `/preview` takes, with the line of help that describes it; none takes arguments yet."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One well-formed command: `verb` is a key of VERBS, `line` counts from 1."""

    verb: str
    args: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandError:
    """A `/preview` line previewbot cannot run: `text` is the line as typed, `problem` is safe to show."""

    line: int
    text: str
    problem: str


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_COMMAND = re.compile(rf"^[ \t]*{re.escape(PREFIX)}(?=\s|$)(?P<rest>.*)$", re.IGNORECASE)
# A fence opens at any indentation and after a list marker, so code nested in lists is skipped
# too: missing a command costs a retype, running a shown one could destroy a preview. A backtick
# fence's info string has no backtick (such a line is inline code instead).
_FENCE_OPEN = re.compile(r"^[ \t]*(?:(?:[-+*]|\d{1,9}[.)])[ \t]+)?(?:(?P<ticks>`{3,})[^`]*|(?P<tildes>~{3,}).*)$")
_FENCE_CLOSE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*$")
_QUOTE = re.compile(r"^ {0,3}>")
_QUOTE_MARKERS = re.compile(r"^(?:[ \t]*>)+")
_BACKTICK_RUN = re.compile(r"`+")
_COMMENT_OPEN = "<!--"
_COMMENT_CLOSE = "-->"
_TAB_WIDTH = 4
_CODE_INDENT = 4


def parse_comment(body: str) -> list[Command | CommandError]:
    """The commands of a comment body in the order they appear, each distinct command once."""
    found: list[Command | CommandError] = []
    seen: set[tuple[str, ...]] = set()
    for number, line in _prose_lines(body):
        match = _COMMAND.match(line)
        if match is None:
            continue
        words = match["rest"].split()
        key = (*(verb.lower() for verb in words[:1]), *words[1:])
        if key in seen:
            continue
        seen.add(key)
        found.append(_read_command(words, line=number, text=line.strip()))
    return found


def help_text() -> str:
    """The markdown table of every command, for `/preview help` and under each error reply."""
    rows = "\n".join(f"| `{PREFIX} {verb}` | {description} |" for verb, description in VERBS.items())
    return (
        "previewbot takes these commands, each on a line of its own in a comment on the pull request:\n\n"
        f"| Command | What it does |\n| --- | --- |\n{rows}\n"
    )


def error_reply(error: CommandError) -> str:
    """The reply to a command previewbot could not run: the problem, then the table of commands."""
    return f"previewbot could not run the command on line {error.line}: {error.problem}\n\n{help_text()}"


def _read_command(words: list[str], *, line: int, text: str) -> Command | CommandError:
    valid = f"the verbs are {', '.join(f'`{verb}`' for verb in VERBS)}."
    if not words:
        return CommandError(line=line, text=text, problem=f"`{PREFIX}` needs a verb; {valid}")
    verb = words[0].lower()
    if verb not in VERBS:
        return CommandError(line=line, text=text, problem=f"that is not a verb `{PREFIX}` knows; {valid}")
    if len(words) > 1:
        return CommandError(line=line, text=text, problem=f"`{PREFIX} {verb}` takes nothing after the verb; {valid}")
    return Command(verb=verb, args=tuple(words[1:]), line=line)


def _prose_lines(body: str) -> Iterator[tuple[int, str]]:
    """The lines a reader sees as prose, numbered from 1, with HTML comments cut out.

    A line continuing a block quote's paragraph without its own `>` still belongs to the
    quote, and a line that starts inside a code span opened on an earlier line is code.
    """
    lines = _LINE_BREAK.split(body)
    visible = _visible_lines(lines)
    in_code_span = _lines_starting_in_code_span(visible)
    quote_open = False
    for index, text in enumerate(visible):
        if text is None or not text.strip():
            quote_open = False
            continue
        if _QUOTE.match(text):
            quote_open = bool(_QUOTE_MARKERS.sub("", text).strip())
            continue
        if quote_open or in_code_span[index] or _indent_width(text) >= _CODE_INDENT:
            continue
        yield index + 1, text


def _visible_lines(lines: list[str]) -> list[str | None]:
    """Each line with HTML comments removed, or None for a line of a fenced code block.

    A line wholly inside a comment becomes empty, so it separates paragraphs as a reader sees it.
    """
    visible: list[str | None] = []
    fence: str | None = None
    in_comment = False
    for line in lines:
        if fence is not None:
            closing = _FENCE_CLOSE.match(line)
            if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence):
                fence = None
            visible.append(None)
            continue
        if not in_comment and (opening := _FENCE_OPEN.match(line)):
            fence = opening["ticks"] or opening["tildes"]
            visible.append(None)
            continue
        text, in_comment = _strip_comments(line, in_comment=in_comment)
        visible.append(text)
    return visible


def _strip_comments(line: str, *, in_comment: bool) -> tuple[str, bool]:
    """The line without its HTML comments, and whether a comment is still open at its end."""
    kept: list[str] = []
    rest = line
    while True:
        if in_comment:
            end = rest.find(_COMMENT_CLOSE)
            if end < 0:
                return "".join(kept), True
            rest = rest[end + len(_COMMENT_CLOSE) :]
            in_comment = False
        start = rest.find(_COMMENT_OPEN)
        if start < 0:
            kept.append(rest)
            return "".join(kept), False
        kept.append(rest[:start])
        rest = rest[start + len(_COMMENT_OPEN) :]
        in_comment = True


def _lines_starting_in_code_span(visible: list[str | None]) -> list[bool]:
    """For each line, whether it starts inside an inline code span that began on an earlier line.

    Code spans live within one paragraph: a run of backticks opens one only when the same
    paragraph has a later run of the same length to close it.
    """
    flags = [False] * len(visible)
    for paragraph in _paragraphs(visible):
        text = "\n".join(visible[index] or "" for index in paragraph)
        line_starts = [0]
        for index in paragraph[:-1]:
            line_starts.append(line_starts[-1] + len(visible[index] or "") + 1)
        for span_start, span_end in _code_spans(text):
            for index, offset in zip(paragraph, line_starts, strict=True):
                if span_start < offset < span_end:
                    flags[index] = True
    return flags


def _paragraphs(visible: list[str | None]) -> Iterator[list[int]]:
    """Runs of indexes of consecutive non-blank lines outside fenced code."""
    run: list[int] = []
    for index, text in enumerate(visible):
        if text is not None and text.strip():
            run.append(index)
        elif run:
            yield run
            run = []
    if run:
        yield run


def _code_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) offsets of the code spans in a paragraph's text."""
    runs = list(_BACKTICK_RUN.finditer(text))
    position = 0
    while position < len(runs):
        opener = runs[position]
        closer = next(
            (later for later in range(position + 1, len(runs)) if len(runs[later][0]) == len(opener[0])),
            None,
        )
        if closer is None:
            position += 1
            continue
        yield opener.start(), runs[closer].end()
        position = closer + 1


def _indent_width(line: str) -> int:
    width = 0
    for char in line:
        if char == " ":
            width += 1
        elif char == "\t":
            width += _TAB_WIDTH - width % _TAB_WIDTH
        else:
            break
    return width

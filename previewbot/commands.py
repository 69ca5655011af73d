"""The `/preview …` commands people type in pull-request comments, and the help that lists them.

A command is a line of its own that starts with `/preview`, a verb and its arguments. Only
text a reader sees as prose counts: lines in code (fenced, indented, inline, or in HTML
`<pre>`/`<code>` elements), in block quotes and in HTML comments are someone showing or
quoting a command, not giving one, so previewbot never acts on them.

The work is linear in the comment's length: a comment is someone else's text, up to GitHub's
65,536 characters, and no shape of it may make previewbot spend more than a glance on it.

Pure: text in, records out. What a user typed is never copied into a reply, so a comment
cannot make previewbot say anything but its own words.
"""

from __future__ import annotations

import bisect
import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
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
        "approve": "Let a pull request from a fork be previewed at the commit named (maintainers).",
        "keep": "Keep this preview: it neither expires nor sleeps; `off` lets its time limits count again.",
        "wake": "Wake a sleeping preview: its workloads are scaled back and waited for.",
    }
)
"""Every verb `/preview` takes, with the line of help that describes it."""

ARGUMENTS: Mapping[str, str] = MappingProxyType({"approve": "<sha>", "keep": "[off]"})
"""What the verbs that take an argument take, as help shows it; the other verbs take nothing."""

COMMIT = re.compile(r"^[0-9a-fA-F]{40}$")
"""How a command names a commit: its whole SHA. A fork's author can make a commit whose SHA starts as the
one a maintainer read does (a 7-character prefix takes minutes to match), so a prefix never approves."""


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
# What hides text from commands within a line: an HTML comment, or a <pre> or <code> element
# (GitHub shows their content as code). A tag's attributes stop at the next `<`, so a line of
# unclosed tags is scanned once, not once per tag.
_HIDDEN_OPEN = re.compile(r"<!--|<(?P<tag>pre|code)(?:\s[^<>]*)?>", re.IGNORECASE)
_HIDDEN_CLOSE = {"": re.compile(r"-->"), **{tag: re.compile(rf"</{tag}\s*>", re.IGNORECASE) for tag in ("pre", "code")}}
_TAB_WIDTH = 4
_CODE_INDENT = 4


def parse_comment(body: str) -> list[Command | CommandError]:
    """The commands of a comment body in the order they appear, each verb once (its first line counts)."""
    found: list[Command | CommandError] = []
    verbs: set[str] = set()
    for number, line in _prose_lines(body):
        match = _COMMAND.match(line)
        if match is None:
            continue
        read = _read_command(match["rest"].split(), line=number, text=line.strip())
        if isinstance(read, Command):
            if read.verb in verbs:
                continue
            verbs.add(read.verb)
        found.append(read)
    return found


def usage(verb: str) -> str:
    """The command as a person types it: `/preview approve <sha>`."""
    return " ".join(part for part in (PREFIX, verb, ARGUMENTS.get(verb)) if part)


def help_text() -> str:
    """The markdown table of every command, for `/preview help` and under each error reply."""
    rows = "\n".join(f"| `{usage(verb)}` | {description} |" for verb, description in VERBS.items())
    return (
        "previewbot takes these commands, each on a line of its own in a comment on the pull request:\n\n"
        f"| Command | What it does |\n| --- | --- |\n{rows}\n"
    )


ERRORS_SHOWN = 5
"""How many malformed lines one reply names: a comment gets one reply, however many it holds."""


def error_reply(errors: Sequence[CommandError]) -> str:
    """The one reply to a comment with malformed commands: the first problems, then the table of commands."""
    lines = [
        "previewbot ran nothing from this comment:",
        *(f"- line {e.line}: {e.problem}" for e in errors[:ERRORS_SHOWN]),
    ]
    if len(errors) > ERRORS_SHOWN:
        lines.append(f"- and {len(errors) - ERRORS_SHOWN} more malformed `{PREFIX}` lines.")
    return "\n".join(lines) + f"\n\n{help_text()}"


def _read_command(words: list[str], *, line: int, text: str) -> Command | CommandError:
    valid = f"the verbs are {', '.join(f'`{verb}`' for verb in VERBS)}."
    if not words:
        return CommandError(line=line, text=text, problem=f"`{PREFIX}` needs a verb; {valid}")
    verb = words[0].lower()
    if verb not in VERBS:
        return CommandError(line=line, text=text, problem=f"that is not a verb `{PREFIX}` knows; {valid}")
    if verb == "approve":
        if len(words) > 2 or not all(COMMIT.match(word) for word in words[1:]):
            return CommandError(
                line=line,
                text=text,
                problem=f"`{usage(verb)}` takes the commit's whole SHA (40 hex characters), as the "
                "waiting comment shows it: a short one could be matched by a commit made to match it.",
            )
        return Command(verb=verb, args=tuple(word.lower() for word in words[1:]), line=line)
    if verb == "keep":
        if len(words) > 2 or any(word.lower() != "off" for word in words[1:]):
            return CommandError(
                line=line, text=text, problem=f"`{usage(verb)}` takes nothing, or `off`: `{PREFIX} keep off`."
            )
        return Command(verb=verb, args=tuple(word.lower() for word in words[1:]), line=line)
    if len(words) > 1:
        return CommandError(line=line, text=text, problem=f"`{PREFIX} {verb}` takes nothing after the verb; {valid}")
    return Command(verb=verb, args=(), line=line)


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
    hidden: str | None = None  # the element still open at the end of the previous line: "" for a comment
    for line in lines:
        if fence is not None:
            closing = _FENCE_CLOSE.match(line)
            if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence):
                fence = None
            visible.append(None)
            continue
        if hidden is None and (opening := _FENCE_OPEN.match(line)):
            fence = opening["ticks"] or opening["tildes"]
            visible.append(None)
            continue
        text, hidden = _strip_hidden(line, hidden=hidden)
        visible.append(text)
    return visible


def _strip_hidden(line: str, *, hidden: str | None) -> tuple[str, str | None]:
    """The line without its HTML comments, <pre> and <code> elements, and which one is still open at its end."""
    kept: list[str] = []
    position = 0
    while True:
        if hidden is not None:
            end = _HIDDEN_CLOSE[hidden].search(line, position)
            if end is None:
                return "".join(kept), hidden
            position, hidden = end.end(), None
        start = _HIDDEN_OPEN.search(line, position)
        if start is None:
            kept.append(line[position:])
            return "".join(kept), None
        kept.append(line[position : start.start()])
        position, hidden = start.end(), (start["tag"] or "").lower()


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
        # Spans do not overlap, so each line is looked at by one span at most.
        for span_start, span_end in _code_spans(text):
            line = bisect.bisect_right(line_starts, span_start)
            while line < len(line_starts) and line_starts[line] < span_end:
                flags[paragraph[line]] = True
                line += 1
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
    runs = [(run.start(), run.end()) for run in _BACKTICK_RUN.finditer(text)]
    # For each run length, the runs of that length still ahead: each is passed over once.
    ahead: dict[int, deque[int]] = {}
    for index, (start, end) in enumerate(runs):
        ahead.setdefault(end - start, deque()).append(index)
    position = 0
    while position < len(runs):
        start, end = runs[position]
        same = ahead[end - start]
        while same and same[0] <= position:
            same.popleft()
        if not same:
            position += 1
            continue
        closer = same.popleft()
        yield start, runs[closer][1]
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

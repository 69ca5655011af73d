"""JUnit XML reports of end-to-end tests, and how a test Job hands its report out through its log.

The XML comes from the repo's own tests, so it is treated as untrusted: a document type
declaration (and with it any entity, the way to a billion-laughs bomb or an external file)
is refused outright, since no JUnit writer needs one.

A test Job's pod has no volume previewbot can read after it ends; its log is the one channel
out. The Job prints the report between two marker lines after the tests, and
`split_report_from_log` takes it back out of the log. The markers carry a token made for
each run, and each is printed after a line break of its own: a report whatever its last byte
(none, CRLF endings) or its content (a line that looks like a marker) is read back whole.
"""

from __future__ import annotations

import secrets
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn
from xml.parsers import expat

from previewbot.errors import UserError
from previewbot.model import TestCase, TestOutcome, TestReport


@dataclass(frozen=True, slots=True)
class ReportMarkers:
    """The two lines a test Job prints around its report; `token` tells them from any look-alike."""

    token: str

    @classmethod
    def new(cls) -> ReportMarkers:
        return cls(secrets.token_hex(8))

    @property
    def begin(self) -> str:
        return f"==== previewbot junit report {self.token} begin ===="

    @property
    def end(self) -> str:
        return f"==== previewbot junit report {self.token} end ===="


MESSAGE_LINES = 8
"""How many lines of a failure's details join its message: enough to see what broke."""

_OUTCOME_OF_CHILD = {
    "failure": TestOutcome.FAILED,
    "error": TestOutcome.ERROR,
    "skipped": TestOutcome.SKIPPED,
}


class ReportError(UserError):
    """A test report that is not readable JUnit XML; the message names the source and where it broke."""


def parse_junit(xml: str | bytes, *, source: str) -> TestReport:
    """The test cases of a JUnit XML report, from a <testsuites> root or a lone <testsuite>.

    Suites may nest; every <testcase> under the root counts once. A case with a <failure>
    or <error> child failed (the first of them tells how), one with <skipped> was skipped.
    """
    root = _parse_tree(xml, source=source)
    if root.tag not in ("testsuites", "testsuite"):
        raise ReportError(f"{source}: the root element is <{root.tag}>, not JUnit's <testsuites> or <testsuite>")
    cases = tuple(_test_case(element) for element in root.iter("testcase"))
    return TestReport(cases=cases, seconds=_report_seconds(root, cases))


def split_report_from_log(log: str, markers: ReportMarkers) -> tuple[str | None, str]:
    """The report printed between the markers' first begin line and their last end line, and the log without it.

    When there is no such pair (no report, or the pod stopped while printing it), the report
    is None and the log comes back as it was, so whatever was printed stays visible. The line
    break printed before each marker is not part of the report or of the log.
    """
    lines = log.splitlines(keepends=True)
    marks = [line.strip() for line in lines]
    begin = next((index for index, mark in enumerate(marks) if mark == markers.begin), None)
    end = next((index for index in reversed(range(len(marks))) if marks[index] == markers.end), None)
    if begin is None or end is None or end < begin:
        return None, log
    report = "".join(lines[begin + 1 : end])
    before = "".join(lines[:begin])
    return _without_last_line_break(report), _without_last_line_break(before) + "".join(lines[end + 1 :])


def _without_last_line_break(text: str) -> str:
    return text.removesuffix("\n")


def _parse_tree(xml: str | bytes, *, source: str) -> ET.Element:
    if not xml.strip():
        raise ReportError(f"{source}: the test report is empty")
    parser = expat.ParserCreate()
    builder = ET.TreeBuilder()

    def refuse(*_: object) -> NoReturn:
        raise ReportError(
            f"{source}: line {parser.CurrentLineNumber}, column {parser.CurrentColumnNumber + 1}: "
            "a DOCTYPE or ENTITY declaration is not allowed in a test report"
        )

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(xml, True)
    except expat.ExpatError as error:
        raise ReportError(
            f"{source}: not well-formed XML at line {error.lineno}, column {error.offset + 1}: "
            f"{expat.ErrorString(error.code)}"
        ) from None
    return builder.close()


def _test_case(element: ET.Element) -> TestCase:
    verdict = _first_child(element, "failure", "error")
    if verdict is None:
        verdict = _first_child(element, "skipped")
    return TestCase(
        name=element.get("name", ""),
        classname=element.get("classname", ""),
        outcome=_OUTCOME_OF_CHILD[verdict.tag] if verdict is not None else TestOutcome.PASSED,
        message=_message(verdict) if verdict is not None and verdict.tag != "skipped" else "",
        seconds=_seconds(element) or 0.0,
    )


def _first_child(element: ET.Element, *tags: str) -> ET.Element | None:
    return next((child for child in element if child.tag in tags), None)


def _message(verdict: ET.Element) -> str:
    """The verdict's message attribute, then the first lines of its text that do not repeat it."""
    summary = [line.rstrip() for line in verdict.get("message", "").strip().splitlines() if line.strip()]
    known = {line.strip() for line in summary}
    details = textwrap.dedent("\n".join(_nonblank_lines(verdict.text or ""))).splitlines()
    fresh = [line for line in details if line.strip() not in known]
    return "\n".join([*summary, *fresh][:MESSAGE_LINES])


def _nonblank_lines(text: str) -> Iterator[str]:
    return (line.rstrip() for line in text.splitlines() if line.strip())


def _seconds(element: ET.Element) -> float | None:
    try:
        value = float(element.get("time", "").replace(",", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _report_seconds(root: ET.Element, cases: tuple[TestCase, ...]) -> float:
    """The root's time when it has one, else its suites' times added up, else its cases'."""
    own = _seconds(root)
    if own is not None:
        return own
    suites = [seconds for suite in root.findall("testsuite") if (seconds := _seconds(suite)) is not None]
    if suites:
        return sum(suites)
    return sum(case.seconds for case in cases)

"""JUnit XML as real tools write it, broken XML, hostile XML, and the report carried in a Job's log."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from previewbot.core.testing import wrap_for_report
from previewbot.errors import UserError
from previewbot.junit import ReportError, ReportMarkers, parse_junit, split_report_from_log
from previewbot.model import TestOutcome

FIXTURES = Path(__file__).parent / "fixtures" / "junit"
ARROW = "\N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK}"  # Playwright joins describe blocks with it

PASSED, FAILED, ERROR, SKIPPED = (
    TestOutcome.PASSED,
    TestOutcome.FAILED,
    TestOutcome.ERROR,
    TestOutcome.SKIPPED,
)


@pytest.mark.parametrize(
    ("fixture", "outcomes", "seconds"),
    [
        (
            "pytest.xml",
            {
                "test_home_page_answers": PASSED,
                "test_cart_total_adds_tax": FAILED,
                "test_orders_list": ERROR,
                "test_checkout": SKIPPED,
                "test_finds_by_name": PASSED,
                "test_unicode_query": FAILED,
                "test_prints_progress": PASSED,
            },
            0.166,
        ),
        (
            "jest.xml",
            {
                "cart adds an item": PASSED,
                "cart applies the discount": FAILED,
                "cart ships abroad": SKIPPED,
                "cart loads prices": FAILED,
                " home page title": PASSED,
            },
            0.413,
        ),
        (
            "playwright.xml",
            {
                f"api {ARROW} health answers": PASSED,
                f"api {ARROW} lists products": FAILED,
                f"api {ARROW} pays by card": SKIPPED,
                "version header": FAILED,
            },
            1.731218,
        ),
        (
            "go-junit-report.xml",
            {
                "TestPass": PASSED,
                "TestPassLog": PASSED,
                "TestOne": FAILED,
                "TestSkip": SKIPPED,
                "TestSkipNow": SKIPPED,
            },
            0.461,
        ),
    ],
)
def test_reports_of_real_tools(fixture: str, outcomes: dict[str, TestOutcome], seconds: float) -> None:
    report = parse_junit((FIXTURES / fixture).read_bytes(), source=fixture)

    assert {case.name: case.outcome for case in report.cases} == outcomes
    assert report.seconds == pytest.approx(seconds)
    assert all(case.message for case in report.failures)
    assert not any(case.message for case in report.cases if case.outcome in (PASSED, SKIPPED))


def test_pytest_message_is_the_attribute_then_the_first_lines_of_the_text() -> None:
    report = parse_junit((FIXTURES / "pytest.xml").read_text(encoding="utf-8"), source="pytest.xml")
    cases = {case.name: case for case in report.cases}

    tax = cases["test_cart_total_adds_tax"]
    assert tax.classname == "test_shop"
    assert tax.message.splitlines()[:3] == [
        "AssertionError: tax is 20%, the total should be 120 <not 121> & nothing else",
        "assert 120.0 == 121",
        "def test_cart_total_adds_tax():",
    ]
    assert cases["test_unicode_query"].message.startswith("AssertionError: ünïcödé mismatch ✗")
    assert cases["test_unicode_query"].classname == "test_shop.TestSearch"
    assert "warming the cache" not in "".join(case.message for case in report.cases)


def test_a_failure_without_a_message_attribute_uses_its_text() -> None:
    report = parse_junit((FIXTURES / "jest.xml").read_bytes(), source="jest.xml")
    discount = next(case for case in report.cases if case.name == "cart applies the discount")

    assert discount.message.splitlines()[:3] == [
        "Error: expect(received).toBe(expected) // Object.is equality",
        "Expected: 80",
        "Received: 90",
    ]
    assert len(discount.message.splitlines()) == 8


def test_details_are_dedented_and_blank_lines_dropped() -> None:
    report = parse_junit((FIXTURES / "go-junit-report.xml").read_bytes(), source="go.xml")
    (failure,) = report.failures

    assert failure.message == ("Failed\nfail_test.go:6: Error message\nfail_test.go:7: Longer\n    error\n    message.")


def test_a_case_with_no_time_counts_as_zero_seconds() -> None:
    report = parse_junit((FIXTURES / "playwright.xml").read_bytes(), source="playwright.xml")

    assert next(case for case in report.cases if case.name == f"api {ARROW} pays by card").seconds == 0.0


def test_nested_suites_count_every_case_once() -> None:
    xml = """<?xml version="1.0"?>
    <testsuites>
      <testsuite name="outer" time="3.5">
        <testcase name="top" time="0.5"/>
        <testsuite name="inner" time="3.0">
          <testcase name="deep" classname="outer.inner" time="1.0">
            <failure message="boom">trace</failure>
          </testcase>
          <testsuite name="innermost">
            <testcase name="deeper" time="2.0"><error message="crashed"/></testcase>
          </testsuite>
        </testsuite>
      </testsuite>
      <testsuite name="second" time="1.0"><testcase name="other" time="1.0"><skipped/></testcase></testsuite>
    </testsuites>"""

    report = parse_junit(xml, source="nested.xml")

    assert [(case.name, case.outcome) for case in report.cases] == [
        ("top", PASSED),
        ("deep", FAILED),
        ("deeper", ERROR),
        ("other", SKIPPED),
    ]
    assert report.seconds == pytest.approx(4.5)  # the top-level suites, not the nested ones again
    assert report.failures[0].message == "boom\ntrace"


@pytest.mark.parametrize(
    ("xml", "seconds"),
    [
        ('<testsuite time="2.5"><testcase name="a" time="1"/></testsuite>', 2.5),
        ('<testsuite><testcase name="a" time="1"/><testcase name="b" time="0.25"/></testsuite>', 1.25),
        ('<testsuites time="1,234.5"><testsuite time="1"/></testsuites>', 1234.5),
        ('<testsuite time="soon"><testcase name="a" time="later"/></testsuite>', 0.0),
    ],
)
def test_a_lone_testsuite_and_its_time(xml: str, seconds: float) -> None:
    assert parse_junit(xml, source="flat.xml").seconds == pytest.approx(seconds)


def test_a_failure_wins_over_a_skip_in_the_same_case() -> None:
    xml = '<testsuite><testcase name="a"><skipped/><failure message="teardown failed"/></testcase></testsuite>'

    (case,) = parse_junit(xml, source="x.xml").cases

    assert (case.outcome, case.message) == (FAILED, "teardown failed")


def test_an_empty_suite_is_a_report_with_no_cases() -> None:
    report = parse_junit(b'<?xml version="1.0" encoding="UTF-8"?><testsuites/>', source="empty-suite.xml")

    assert report.cases == ()
    assert report.seconds == 0.0


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        ("", "report.xml: the test report is empty"),
        (b"  \n\t", "report.xml: the test report is empty"),
        (
            "<testsuite><testcase name='a'></testsuite>",
            "report.xml: not well-formed XML at line 1, column 33: mismatched tag",
        ),
        (
            "<testsuite>\n  <testcase name=a/>\n</testsuite>",
            "report.xml: not well-formed XML at line 2, column 18: ",
        ),
        ("<testsuite/><testsuite/>", "report.xml: not well-formed XML at line 1, column 13: junk after"),
        ("PASS all tests\n", "report.xml: not well-formed XML at line 1, column 1: syntax error"),
        ("<html><body>502 Bad Gateway</body></html>", "report.xml: the root element is <html>, not JUnit's"),
        ("<testsuite><testcase name='&nbsp;'/></testsuite>", "undefined entity"),
    ],
)
def test_unreadable_reports_name_the_source_and_the_place(xml: str | bytes, expected: str) -> None:
    with pytest.raises(ReportError) as raised:
        parse_junit(xml, source="report.xml")

    assert expected in str(raised.value)
    assert isinstance(raised.value, UserError)


@pytest.mark.parametrize(
    "xml",
    [
        # The billion laughs: entities that expand to gigabytes.
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n]>\n'
        "<testsuite><testcase name='&lol2;'/></testsuite>",
        # An external entity that would read a file of the test container.
        '<!DOCTYPE testsuite [<!ENTITY secret SYSTEM "file:///etc/passwd">]><testsuite>&secret;</testsuite>',
        # A bare document type declaration.
        '<!DOCTYPE testsuite SYSTEM "junit.dtd"><testsuite/>',
    ],
)
def test_doctype_and_entity_declarations_are_refused(xml: str) -> None:
    with pytest.raises(ReportError, match=r"^evil\.xml: line \d+, column \d+: a DOCTYPE or ENTITY declaration"):
        parse_junit(xml, source="evil.xml")


MARKERS = ReportMarkers("5eed")


def test_the_report_between_the_markers_is_taken_out_of_the_log() -> None:
    log = (
        "running 3 tests\n"
        f"\n{MARKERS.begin}\r\n<testsuite>\n  <testcase name='a'/>\n</testsuite>\n\n{MARKERS.end}\r\n"
        "done\n"
    )

    report, rest = split_report_from_log(log, MARKERS)

    assert report == "<testsuite>\n  <testcase name='a'/>\n</testsuite>\n"
    assert rest == "running 3 tests\ndone\n"
    assert [case.name for case in parse_junit(report, source="log").cases] == ["a"]


def test_lines_like_markers_inside_the_report_are_part_of_it() -> None:
    other = ReportMarkers("0ther")
    inside = f"<testsuite><testcase name='a'><system-out>\n{other.begin}\n{other.end}\n</system-out></testcase>"
    inside += "\n</testsuite>"
    log = f"\n{MARKERS.begin}\n{inside}\n{MARKERS.end}\n"

    report, _ = split_report_from_log(log, MARKERS)

    assert report == inside


@pytest.mark.parametrize(
    "log",
    [
        "",
        "all tests passed\n",
        f"tests done\n{MARKERS.begin}\n<testsuite>\n  <testcase name='a'/>\n",  # the pod stopped mid-report
        f"{MARKERS.end}\n<testsuite/>\n{MARKERS.begin}\n",  # markers in the wrong order
        f"echo {MARKERS.begin}; cat report.xml; echo {MARKERS.end}\n",  # the command echoed, not its output
        f"{ReportMarkers('0ther').begin}\n<testsuite/>\n{ReportMarkers('0ther').end}\n",  # another run's markers
    ],
)
def test_no_report_when_there_is_no_terminated_pair_of_markers(log: str) -> None:
    assert split_report_from_log(log, MARKERS) == (None, log)


def test_an_empty_report_between_markers_is_empty_text() -> None:
    report, rest = split_report_from_log(f"{MARKERS.begin}\n{MARKERS.end}\n", MARKERS)

    assert (report, rest) == ("", "")
    with pytest.raises(ReportError, match="empty"):
        parse_junit(report, source="the test Job's log")


def _without_final_newline(fixture: str) -> bytes:
    return (FIXTURES / fixture).read_bytes().rstrip(b"\r\n")


@pytest.mark.parametrize(
    "report",
    [
        pytest.param(_without_final_newline(name), id=f"{name} without a final newline")
        for name in ("pytest.xml", "jest.xml", "playwright.xml", "go-junit-report.xml")
    ]
    + [
        pytest.param(_without_final_newline("jest.xml").replace(b"\n", b"\r\n"), id="CRLF line endings"),
        pytest.param(_without_final_newline("pytest.xml") + b"\r\n", id="a final CRLF"),
        pytest.param(
            b"<testsuite><testcase name='a'><system-out>\n==== previewbot junit report x end ====\n"
            b"</system-out></testcase></testsuite>",
            id="a marker-like line inside",
        ),
    ],
)
@pytest.mark.parametrize("output", ["ran the tests\n", "ran the tests without a final newline"])
def test_the_wrapped_command_hands_any_report_out_whole(tmp_path: Path, report: bytes, output: str) -> None:
    (tmp_path / "report.xml").write_bytes(report)
    markers = ReportMarkers.new()
    command = wrap_for_report(["printf", "%s", output], "report.xml", markers)

    ran = subprocess.run(command, cwd=tmp_path, capture_output=True, check=True)

    text, rest = split_report_from_log(ran.stdout.decode(), markers)
    assert text == report.decode()
    assert rest == output
    assert parse_junit(text, source="report.xml").cases

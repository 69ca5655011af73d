"""The `/preview` comment parser: what counts as a command, and what is only shown or quoted."""

from __future__ import annotations

import pytest

from previewbot.commands import VERBS, Command, CommandError, error_reply, help_text, parse_comment


def command(verb: str, line: int = 1) -> Command:
    return Command(verb=verb, args=(), line=line)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("/preview redeploy", [command("redeploy")], id="bare"),
        pytest.param("   /preview destroy", [command("destroy")], id="three-leading-spaces"),
        pytest.param("/preview   status   ", [command("status")], id="spaces-around-verb"),
        pytest.param("/preview\thelp", [command("help")], id="tab-before-verb"),
        pytest.param("/PREVIEW Approve", [command("approve")], id="case-ignored"),
        pytest.param("/Preview REDEPLOY\r\n", [command("redeploy")], id="crlf"),
        pytest.param(
            "Looks good.\r\n\r\n/preview redeploy\r\n/preview status\r\nThanks!",
            [command("redeploy", 3), command("status", 4)],
            id="several-among-prose-crlf",
        ),
        pytest.param(
            "/preview status\n/preview destroy\n/preview status",
            [command("status", 1), command("destroy", 2)],
            id="repeat-counts-once",
        ),
        pytest.param("/preview destroy\n/PREVIEW DESTROY", [command("destroy")], id="repeat-in-other-case"),
        pytest.param("Please redeploy\n/preview redeploy\nso I can check", [command("redeploy", 2)], id="prose"),
        pytest.param("Old line endings\r/preview help", [command("help", 2)], id="cr-only"),
        pytest.param("", [], id="empty"),
        pytest.param("Nothing to see here.", [], id="no-command"),
        pytest.param("Run /preview redeploy please", [], id="mid-line"),
        pytest.param("/previewer redeploy", [], id="longer-word"),
        pytest.param("/preview-destroy", [], id="joined-with-dash"),
        pytest.param("preview redeploy", [], id="no-slash"),
    ],
)
def test_commands_found(body: str, expected: list[Command | CommandError]) -> None:
    assert parse_comment(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("```\n/preview destroy\n```", id="backtick-fence"),
        pytest.param("~~~\n/preview destroy\n~~~", id="tilde-fence"),
        pytest.param("```console\n/preview destroy\n```", id="fence-with-info"),
        pytest.param("  ```\n/preview destroy\n  ```", id="indented-fence"),
        pytest.param("````\n```\n/preview destroy\n````", id="longer-fence-not-closed-by-shorter"),
        pytest.param("~~~\n```\n/preview destroy\n~~~", id="other-fence-char-does-not-close"),
        pytest.param("Try this:\n```\n/preview destroy\n", id="unclosed-fence-runs-to-the-end"),
        pytest.param("- ```\n  /preview destroy\n  ```", id="fence-in-list-item"),
        pytest.param("Example:\n\n    /preview destroy", id="indented-code"),
        pytest.param("\t/preview destroy", id="tab-indented-code"),
        pytest.param("`/preview destroy`", id="inline-code"),
        pytest.param("Type ``\n/preview destroy\n`` to tear it down", id="inline-code-across-lines"),
        pytest.param("> /preview destroy", id="quote"),
        pytest.param("   > /preview destroy", id="indented-quote"),
        pytest.param("> > /preview destroy", id="nested-quote"),
        pytest.param(">> /preview destroy", id="nested-quote-no-space"),
        pytest.param("> You wrote:\n/preview destroy", id="lazy-quote-continuation"),
        pytest.param("<!-- /preview destroy -->", id="html-comment"),
        pytest.param("<!--\n/preview destroy\n-->", id="multi-line-html-comment"),
        pytest.param("<!-- hidden\n/preview destroy", id="unclosed-html-comment"),
    ],
)
def test_commands_shown_or_quoted_never_count(body: str) -> None:
    assert parse_comment(body) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("```\n/preview destroy\n```\n/preview status", [command("status", 4)], id="after-closed-fence"),
        pytest.param(
            "````\n```\n/preview destroy\n````\n/preview redeploy",
            [command("redeploy", 5)],
            id="after-long-fence",
        ),
        pytest.param("```foo```\n/preview help", [command("help", 2)], id="inline-triple-backticks-open-no-fence"),
        pytest.param(
            "> /preview destroy\n\n/preview redeploy",
            [command("redeploy", 3)],
            id="quote-reply-then-own-command",
        ),
        pytest.param("<!-- note -->\n/preview status", [command("status", 2)], id="after-html-comment"),
        pytest.param("<!-- note --> /preview status", [command("status")], id="after-html-comment-same-line"),
        pytest.param("<!--\nhidden\n-->\n/preview help", [command("help", 4)], id="after-multi-line-comment"),
        pytest.param("A `code` span\n/preview approve", [command("approve", 2)], id="after-closed-code-span"),
        pytest.param("An open ` backtick\n/preview approve", [command("approve", 2)], id="lone-backtick"),
    ],
)
def test_commands_after_code_quotes_and_comments_count(body: str, expected: list[Command]) -> None:
    assert parse_comment(body) == expected


@pytest.mark.parametrize(
    ("body", "line", "text", "problem_start"),
    [
        pytest.param("/preview", 1, "/preview", "`/preview` needs a verb", id="no-verb"),
        pytest.param("Hi\n  /PREVIEW  ", 2, "/PREVIEW", "`/preview` needs a verb", id="no-verb-spaces"),
        pytest.param("/preview deploy", 1, "/preview deploy", "that is not a verb", id="unknown-verb"),
        pytest.param("/preview `destroy`", 1, "/preview `destroy`", "that is not a verb", id="verb-in-backticks"),
        pytest.param(
            "/preview destroy now",
            1,
            "/preview destroy now",
            "`/preview destroy` takes nothing",
            id="argument",
        ),
        pytest.param("/Preview Status --all", 1, "/Preview Status --all", "`/preview status` takes nothing", id="flag"),
    ],
)
def test_malformed_commands(body: str, line: int, text: str, problem_start: str) -> None:
    [error] = parse_comment(body)
    assert isinstance(error, CommandError)
    assert (error.line, error.text) == (line, text)
    assert error.problem.startswith(problem_start)
    assert all(f"`{verb}`" in error.problem for verb in VERBS)


def test_errors_and_commands_keep_their_order() -> None:
    found = parse_comment("/preview redeploy\n/preview nonsense\n/preview status\n/preview nonsense")
    assert [getattr(item, "verb", None) for item in found] == ["redeploy", None, "status"]
    assert [item.line for item in found] == [1, 2, 3]


def test_problem_never_repeats_what_the_user_typed() -> None:
    typed = "/preview @everyone <img src=x> [click](https://example.invalid)"
    [error] = parse_comment(typed)
    assert isinstance(error, CommandError)
    for fragment in ("@everyone", "<img", "example.invalid"):
        assert fragment not in error.problem
        assert fragment not in error_reply(error)


def test_help_lists_every_verb_once_with_its_description() -> None:
    text = help_text()
    for verb, description in VERBS.items():
        assert text.count(f"| `/preview {verb}` | {description} |") == 1
    assert "| Command | What it does |" in text


def test_error_reply_names_the_line_and_the_problem_and_lists_the_commands() -> None:
    error = CommandError(line=3, text="/preview x", problem="that is not a verb `/preview` knows")
    reply = error_reply(error)
    assert reply.startswith("previewbot could not run the command on line 3: that is not a verb")
    assert reply.endswith(help_text())

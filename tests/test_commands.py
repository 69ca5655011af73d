"""The `/preview` comment parser: what counts as a command, and what is only shown or quoted."""

from __future__ import annotations

import time

import pytest

from previewbot.commands import VERBS, Command, CommandError, error_reply, help_text, parse_comment, usage


def command(verb: str, line: int = 1) -> Command:
    return Command(verb=verb, args=(), line=line)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("/preview redeploy", [command("redeploy")], id="bare"),
        pytest.param("   /preview destroy", [command("destroy")], id="three-leading-spaces"),
        pytest.param("/preview   status   ", [command("status")], id="spaces-around-verb"),
        pytest.param("/preview\thelp", [command("help")], id="tab-before-verb"),
        pytest.param("/PREVIEW Help", [command("help")], id="case-ignored"),
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
    assert [getattr(item, "verb", None) for item in found] == ["redeploy", None, "status", None]
    assert [item.line for item in found] == [1, 2, 3, 4]


def test_a_verb_counts_once_whatever_follows_it() -> None:
    found = parse_comment(f"/preview approve {'1' * 40}\n/preview approve {'2' * 40}\n/preview approve")
    assert found == [Command(verb="approve", args=("1" * 40,), line=1)]


@pytest.mark.parametrize(
    ("body", "args"),
    [
        pytest.param("/preview approve " + "AbCdEf0123" * 4, ("abcdef0123" * 4,), id="whole-sha-any-case"),
        pytest.param("/preview approve", (), id="no-sha"),
    ],
)
def test_an_approval_names_its_commit(body: str, args: tuple[str, ...]) -> None:
    assert parse_comment(body) == [Command(verb="approve", args=args, line=1)]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("/preview approve 1a2b3c", id="six-hex"),
        pytest.param("/preview approve 1a2b3c4", id="a-short-sha"),
        pytest.param("/preview approve " + "a" * 39, id="thirty-nine-hex"),
        pytest.param("/preview approve " + "a" * 41, id="forty-one-hex"),
        pytest.param("/preview approve main", id="a-branch"),
        pytest.param(f"/preview approve {'1' * 40} {'2' * 40}", id="two-commits"),
    ],
)
def test_an_approval_of_something_else_than_a_commit_is_malformed(body: str) -> None:
    [error] = parse_comment(body)
    assert isinstance(error, CommandError)
    assert error.problem.startswith("`/preview approve <sha>` takes the commit's whole SHA (40 hex characters)")


@pytest.mark.parametrize(
    ("body", "args"),
    [
        pytest.param("/preview keep", (), id="keep"),
        pytest.param("/preview keep OFF", ("off",), id="keep-off-any-case"),
    ],
)
def test_keep_takes_nothing_or_off(body: str, args: tuple[str, ...]) -> None:
    assert parse_comment(body) == [Command(verb="keep", args=args, line=1)]


@pytest.mark.parametrize("body", ["/preview keep forever", "/preview keep off now", "/preview wake up"])
def test_keep_with_anything_but_off_and_wake_with_anything_are_malformed(body: str) -> None:
    [error] = parse_comment(body)
    assert isinstance(error, CommandError)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("<pre>\n/preview destroy\n</pre>", id="pre-block"),
        pytest.param("<PRE class='x'>\n/preview destroy\n</PRE >", id="pre-attributes-any-case"),
        pytest.param("<code>/preview destroy</code>", id="code-element"),
        pytest.param("<code>\n/preview destroy\n</code>", id="code-element-across-lines"),
        pytest.param("<pre><code>\n/preview destroy\n</code></pre>", id="code-in-pre"),
        pytest.param("<pre>\n/preview destroy", id="unclosed-pre-runs-to-the-end"),
    ],
)
def test_commands_in_html_code_elements_never_count(body: str) -> None:
    assert parse_comment(body) == []


@pytest.mark.parametrize(
    ("body", "line"),
    [
        pytest.param("<pre>x</pre>\n/preview status", 2, id="after-pre"),
        pytest.param("<code>x</code> /preview status", 1, id="after-code-same-line"),
        pytest.param("<precious>\n/preview status", 2, id="not-a-pre-tag"),
    ],
)
def test_commands_after_html_code_elements_count(body: str, line: int) -> None:
    assert parse_comment(body) == [command("status", line)]


COMMENT_LIMIT = 65536
ADVERSARIAL_COMMENTS = {
    "backticks": "`" * COMMENT_LIMIT,
    "backticks-and-spaces": "` " * (COMMENT_LIMIT // 2),
    "backtick-runs-of-every-length": "".join("`" * length + " " for length in range(1, 362)),
    "a-backtick-on-every-line": "`a\n" * (COMMENT_LIMIT // 3),
    "code-spans-on-every-line": "``\n" * (COMMENT_LIMIT // 3),
    "unclosed-pre-tags": "<pre" * (COMMENT_LIMIT // 4),
    "unclosed-comments": "<!--" * (COMMENT_LIMIT // 4),
    "malformed-commands": "/preview x\n" * (COMMENT_LIMIT // 11),
    "fence-openers": "```x`\n" * (COMMENT_LIMIT // 6),
    "quote-markers": "> " * (COMMENT_LIMIT // 2),
}


@pytest.mark.parametrize("body", ADVERSARIAL_COMMENTS.values(), ids=ADVERSARIAL_COMMENTS.keys())
def test_the_largest_comment_of_any_shape_parses_at_a_glance(body: str) -> None:
    # The quadratic parser took 15 to 30 s on some of these; a linear one takes tens of
    # milliseconds, so even a machine a hundred times slower passes.
    started = time.perf_counter()
    parse_comment(body[:COMMENT_LIMIT])
    assert time.perf_counter() - started < 3.0


def test_problem_never_repeats_what_the_user_typed() -> None:
    typed = "/preview @everyone <img src=x> [click](https://example.invalid)"
    [error] = parse_comment(typed)
    assert isinstance(error, CommandError)
    for fragment in ("@everyone", "<img", "example.invalid"):
        assert fragment not in error.problem
        assert fragment not in error_reply([error])


def test_help_lists_every_verb_once_with_its_description() -> None:
    text = help_text()
    for verb, description in VERBS.items():
        assert text.count(f"| `{usage(verb)}` | {description} |") == 1
    assert "| `/preview approve <sha>` |" in text
    assert "| Command | What it does |" in text


def test_error_reply_names_the_line_and_the_problem_and_lists_the_commands() -> None:
    error = CommandError(line=3, text="/preview x", problem="that is not a verb `/preview` knows")
    reply = error_reply([error])
    assert reply.startswith("previewbot ran nothing from this comment:\n- line 3: that is not a verb")
    assert reply.endswith(help_text())

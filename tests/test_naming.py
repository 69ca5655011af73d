"""What previewbot writes on the cluster to know its own: repo labels that never meet, ownership checked twice."""

from __future__ import annotations

import re

import pytest

from previewbot import naming
from previewbot.model import NamespaceInfo

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def preview_of(repo: str, *, labels_of: str | None = None, number: int = 7) -> NamespaceInfo:
    return NamespaceInfo(
        name="preview-web-pr-7",
        labels=naming.preview_labels(repo=labels_of or repo, number=number),
        annotations={naming.REPO_ANNOTATION: repo},
    )


def test_two_repos_whose_folded_names_used_to_meet_get_their_own_labels() -> None:
    assert naming.repo_label("acme/web_app") != naming.repo_label("acme/web-app-5032b7")


@pytest.mark.parametrize(
    ("repo", "label"),
    [
        ("acme/web_app", "acme.web_app"),
        ("Acme/Web.App", "acme.web.app"),
        ("acme/web-app-5032b7", "acme.web-app-5032b7"),
    ],
)
def test_a_repo_that_is_a_label_value_is_its_own_label(repo: str, label: str) -> None:
    assert naming.repo_label(repo) == label


@pytest.mark.parametrize("repo", ["acme/" + "x" * 70, "acme/web-", "acme/web_", "acme/.web."])
def test_a_repo_that_is_no_label_value_is_hashed_unmistakably(repo: str) -> None:
    label = naming.repo_label(repo)

    assert LABEL_VALUE.match(label)
    assert len(label) <= 63
    # an owner holds neither `_` nor `.`: only a hashed label has `_` before its first `.`
    assert "_" in label.partition(".")[0]
    assert naming.repo_label(repo.upper()) == label


def test_ownership_needs_the_labels_and_the_repo_annotation_to_agree() -> None:
    assert naming.is_owned(preview_of("acme/web_app"), repo="acme/web_app", number=7)
    assert naming.is_owned(preview_of("Acme/Web_App"), repo="acme/web_app")
    assert not naming.is_owned(preview_of("acme/web_app"), repo="acme/web_app", number=8)
    assert not naming.is_owned(preview_of("acme/web_app", labels_of="acme/web-app-5032b7"), repo="acme/web-app-5032b7")
    assert not naming.is_owned(preview_of("acme/other"), repo="acme/web_app")

"""Running a preview's end-to-end tests again, with no redeploy: whether the preview is fit for it.

Only the preview of the PR's current head whose workloads became ready is tested again: a
preview of an older commit would test code the PR no longer has, one whose rollout failed has
nothing to test, and one that is deploying or testing gets its results from that run.
"""

from __future__ import annotations

from previewbot import naming
from previewbot.model import NamespaceInfo, Phase

_UNDER_WAY = (Phase.PENDING, Phase.DEPLOYING, Phase.TESTING)


def refusal(namespace: NamespaceInfo | None, *, head_sha: str, has_tests: bool) -> str | None:
    """Why `/preview retest` cannot run against namespace for commit head_sha, or None when it can."""
    short = f"`{head_sha[:7]}`"
    if not has_tests:
        return "This preview has no end-to-end tests (`tests` in `.preview.yml`): there is nothing to run again."
    if namespace is None or namespace.terminating:
        return "There is no preview of this pull request to test. Comment `/preview redeploy` to deploy one."
    notes = namespace.annotations
    if notes.get(naming.HEAD_SHA_ANNOTATION) != head_sha:
        return (
            f"The preview does not run the pull request's head {short} yet, so its tests would test other code. "
            "Wait for the deploy of the head, or comment `/preview redeploy`."
        )
    if notes.get(naming.STATUS_ANNOTATION) in _UNDER_WAY:
        return f"The preview of {short} is still being deployed or tested: its results will show in the comment."
    if notes.get(naming.ROLLED_OUT_SHA_ANNOTATION) != head_sha:
        return (
            f"The preview of {short} never became ready, so there is nothing to test. "
            "Push a fix, or comment `/preview redeploy`."
        )
    return None

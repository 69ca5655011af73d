"""Paths the config names, held inside the repo's checkout.

A PR writes its checkout, and any file in it may be a symbolic link: to the runner's
credentials, to /etc/passwd. previewbot reads only paths that, with their `..` and links
followed, stay inside the checkout: the config, the manifests and the charts and overlays,
and the report a runner test command writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from previewbot.errors import ManifestError, UserError


def path_in_repo(
    root: Path,
    entry: str,
    *,
    key: str,
    must_exist: bool = True,
    refusal: Callable[[str], UserError] = ManifestError,
) -> Path:
    """root/entry with its `..` and links followed, once it is known to be inside root.

    Anything else is refused with `refusal(message)`, the message naming key and entry.
    """
    base = root.resolve()
    if Path(entry).is_absolute():
        raise refusal(f"{key}: {entry} is an absolute path: give a path inside the repo")
    target = base / entry
    if not is_inside(target, base):
        raise refusal(f"{key}: {entry} is outside the repo" + (" (a link out of it)" if target.is_symlink() else ""))
    if must_exist and not target.exists():
        raise refusal(f"{key}: {entry} does not exist in the repo")
    return target.resolve()


def is_inside(path: Path, base: Path) -> bool:
    """Whether path, with its `..` and symbolic links followed, is within base (itself resolved)."""
    return path.resolve().is_relative_to(base)

"""Where a preview's manifests come from besides plain files: a Helm chart or a Kustomize overlay.

Each source turns what the repo holds into YAML text, offline and from the checkout alone:
previewbot.manifests then reads that text as it reads plain manifest files, so every object
gets the same checks, namespace, labels and image pinning whatever its source.
"""

from __future__ import annotations

from pathlib import Path

from previewbot.errors import ManifestError


def path_in_repo(root: Path, entry: str, *, key: str) -> Path:
    """root/entry, once it is known to exist inside root with its `..` and symbolic links followed."""
    base = root.resolve()
    if Path(entry).is_absolute():
        raise ManifestError(f"{key}: {entry} is an absolute path: give a path inside the repo")
    target = base / entry
    if not is_inside(target, base):
        raise ManifestError(f"{key}: {entry} is outside the repo")
    if not target.exists():
        raise ManifestError(f"{key}: {entry} does not exist in the repo")
    return target.resolve()


def is_inside(path: Path, base: Path) -> bool:
    """Whether path, with its `..` and symbolic links followed, is within base (itself resolved)."""
    return path.resolve().is_relative_to(base)


def check_links_stay_inside(folder: Path, *, root: Path, key: str) -> None:
    """Refuse a folder that holds a symbolic link out of the repo: its files would be read from the runner."""
    base = root.resolve()
    for path in folder.rglob("*"):
        if path.is_symlink() and not is_inside(path, base):
            raise ManifestError(f"{key}: {path.relative_to(base).as_posix()} links outside the repo")

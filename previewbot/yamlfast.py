"""YAML read with libyaml's parser where PyYAML has it: about ten times faster than PyYAML's own, same objects.

Every YAML previewbot reads (manifests, configs, kubeconfigs, its own RBAC rules) goes through here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> Any:
    return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 (a safe loader either way: libyaml's or PyYAML's)


def load_all(text: str) -> Iterator[Any]:
    return yaml.load_all(text, Loader=SAFE_LOADER)

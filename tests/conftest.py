"""Shared pytest set-up: the emulated GitHub and Kubernetes APIs are plugins, one module each."""

pytest_plugins = ["tests.emulators.kube_plugin", "tests.emulators.github_plugin"]

"""pytest set-up shared by tests/ and benchmarks/: the emulated GitHub and Kubernetes APIs as plugins."""

pytest_plugins = ["tests.emulators.kube_plugin", "tests.emulators.github_plugin"]

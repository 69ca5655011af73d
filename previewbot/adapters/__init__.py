"""Adapters: the only modules that import an SDK (PyGithub, kubernetes, httpx) or run processes.

Each implements a port of previewbot.core.ports and maps its SDK's errors to previewbot.errors.
"""

"""pytest fixtures of the emulated GitHub API."""

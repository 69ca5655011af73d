"""pytest fixtures of the emulated Kubernetes API."""

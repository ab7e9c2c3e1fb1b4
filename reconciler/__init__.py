"""incus-images: keep Incus image stores in the state a git repository declares."""

__version__ = "0.1.0"

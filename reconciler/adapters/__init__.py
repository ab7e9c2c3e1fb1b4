"""Real adapters behind the ports: Incus daemons over HTTP (unix socket or HTTPS)."""

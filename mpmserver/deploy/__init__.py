"""Deployment: listening sockets, privileges (unixd), systemd, binary upgrade, reload."""

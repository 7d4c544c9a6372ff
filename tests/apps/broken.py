"""An app module that fails at import: the fork-storm guard must stop the server."""

raise RuntimeError("this app module is broken on purpose")

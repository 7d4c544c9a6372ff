"""Apache-style modules, each owning its directives' meaning: remoteip, proxy_protocol, reqtimeout,
status, metrics, health (their handler wrapper: pages), agent (agent_listen: its socket)."""

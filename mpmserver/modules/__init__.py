"""Apache-style modules, each owning its directives' meaning: remoteip, proxy_protocol, reqtimeout, status, metrics, health, agent."""

"""The listener: one event loop thread per child (uvloop, or asyncio)."""

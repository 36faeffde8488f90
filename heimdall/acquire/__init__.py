"""Live acquisition from KiwiSDR receivers (DESIGN §2, §10): the receivers' websocket protocol."""

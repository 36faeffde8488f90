"""Training and ONNX export (needs the optional ``train`` extra: torch)."""

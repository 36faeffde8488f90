"""Worker processes: lifecycle hooks (ONNX session per prefork child) and the worker command."""

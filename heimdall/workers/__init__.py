"""A worker node's lifecycle: ONNX sessions preloaded per prefork child, hot reload and its
control command, ``/metrics`` ``/healthz`` ``/readyz``, and log hygiene."""

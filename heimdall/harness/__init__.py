"""What the tools that serve people share: console tables and progress, a private redis-server,
the local-fleet harness (Redis, worker nodes, producer, result listener) and the scoring of an
estimate against the truth. Below every tool that uses them (``measure``, ``cli``)."""

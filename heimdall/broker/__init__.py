"""Our extensions of Celery, kombu and redis-py (DESIGN §2): the only room that touches their
private names, each listed in :mod:`heimdall.broker.internals`."""

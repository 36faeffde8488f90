"""Measuring tools: the benchmark, the chaos run, the memory run, the evaluations (RSS network,
TDoA) and the TDoA picture. Above the harness they run on; below the ``heimdall`` command."""

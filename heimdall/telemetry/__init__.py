"""Metric families shared by every room of a worker node (DESIGN §8.10, §13)."""

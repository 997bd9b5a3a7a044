"""Allocator: fair, exact allocation of workers (junior doctors) to job lines."""

__version__ = "0.1.0"

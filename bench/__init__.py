"""Benchmarks: what reuse costs and saves, measured side by side on the machine they run on.

``python -m bench`` runs them all; ``--quick`` fewer repeats; ``--json`` one JSON object on stdout.
"""

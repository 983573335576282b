"""Measurement scripts (``python benchmarks/NAME.py``): each prints its numbers measured side by side in one run,
and its docstring holds the last measured tables. Installed as a package so that they share helpers
(``benchmarks.export_fidelity.time_files``) without path tricks."""

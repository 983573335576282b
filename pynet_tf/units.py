"""The units sizes are shown in, each defined once.

File sizes are in MB = 10^6 bytes, as TFLite's ``benchmark_model`` prints "The input model file size (MB)";
memory is in MiB = 2^20 bytes, as its memory footprints (KiB / 1024) and the host's resident set are counted.
"""

MB = 10**6
"""Bytes in a megabyte: file sizes (sidecars, results, reports, exporters' and benchmarks' tables)."""
MIB = 2**20
"""Bytes in a mebibyte: memory (peak and growth of a benchmark run, a process's resident set)."""

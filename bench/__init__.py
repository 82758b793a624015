"""The provider's benchmarks (bench/README.md), one module per part.

``run`` is the command line (``python bench/run.py``, ``make bench``); ``common`` what every part shares;
``child`` the entry of a measured child process; the parts: ``download``, ``s3``, ``rss``, ``triggers``,
``fixed``, and ``goals`` (every goal with PASS/MISS); ``parquet`` is the Parquet/JSON Lines benchmark
(``python bench/parquet.py``).
"""

"""Readers of a store: DuckDB views and queries (``query``), pandas DataFrames (``frames``),
exports for other programs (``export``) and the public ``Store`` with its reading methods
(``store``). They read the store through ``loganalyzer.store`` and never write it."""

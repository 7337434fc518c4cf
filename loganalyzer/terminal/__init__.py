"""Everything loganalyzer prints to a terminal (rich), one module per kind of result.

This layer sits under the CLI and the API and above the result packages (trace, headers,
report): it imports result objects and renders them; no result package imports it.

- ``common``: ``clean()`` for every value from a log or a header, JSON output, a status line
- ``trace``, ``headers``, ``report``: a trace, a header analysis, a daily report's summary
- ``ingest``: the progress bar and the summary of an ingest
- ``store``: a compaction's summary and a store check
- ``tables``: SQL results, code tables, the formats
- ``demo``: the demo's story and what ``synth`` wrote
"""

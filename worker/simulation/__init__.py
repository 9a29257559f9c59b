"""The simulation core, free of Celery and Redis. From the bottom up: the request's models
(``request``, with ``limits`` and ``errors``), the plan's data types (``plans``); the checks both
forms of network share (``checks``) and the cost model (``cost``); the checks of chains
(``chain_plan``) and graphs (``graph_plan``), JSON decoding and NIR expansion (``parsing``) and
their entry point (``plan``); sweeps (``sweep``); the network built from a plan (``build``), the
chunked run (``runner``, ``graph_runner``, ``batched``) and its recorded result (``results``);
NIR files (``nir_file``, ``nir_import``, ``nir_export``), binomial input counts (``binomial``) and
the request reference (``reference``)."""

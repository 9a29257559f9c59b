"""The simulation core, free of Celery and Redis: a request's models (``request``), its semantic
check and plan (``plan``, with ``cost`` and ``limits``), the network built from it (``build``),
the chunked run (``runner``), its recorded result (``results``), and NIR import and export."""

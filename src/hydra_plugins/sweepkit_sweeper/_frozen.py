"""Imported last by the warm workers' server (``_warm_workers``): what it imported before is frozen out of
the collector's reach (``gc.freeze``).

Two gains, both Python's documented reasons for freezing before forks: the workers forked from the server
share those pages instead of copying each one the collector touches, and the server, which ends with
the sweep, ends without collecting a million objects of torch's (1-2 s that the sweep's end waited for).
"""

import gc

gc.freeze()

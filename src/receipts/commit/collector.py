"""Garbage collection in the server's own processes (``receipts serve``, its writer process).

Not for an app inside somebody else's process: these settings are the whole process's.

CPython's cyclic collector runs its youngest generation every 700 container allocations, and a
full collection walks every object still alive. A large request allocates thousands of
containers for its JSON alone, and under batch load the collector took a large share of the
HTTP process's CPU (docs/benchmarks.md §5). The ledger makes no reference cycles on its hot
paths (reference counting frees what it allocates), so the collector has little to find there.
"""

from __future__ import annotations

import gc
from typing import Final

# Young-generation threshold: container allocations (net of frees) between collections.
YOUNG_THRESHOLD: Final = 50_000


def settle_gc() -> None:
    """After start-up: move what is alive (modules, the catalog and its compiled schemas, the
    app) out of the collector's sight for good, and collect the young generation less often.
    Older generations keep CPython's ratios."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])

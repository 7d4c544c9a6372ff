"""mpmserver's benchmark tools: the `mpmserver bench` load generator and the
helpers benchmarks/ uses to start servers and drive them."""

from .cli import main, run
from .histogram import Histogram
from .load import LoadConfig, build_request, run_worker
from .runner import BenchError, run_load

__all__ = ["main", "run", "run_load", "run_worker", "LoadConfig", "build_request",
           "Histogram", "BenchError"]

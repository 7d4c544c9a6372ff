"""mpmserver's benchmark tools: the `mpmserver bench` load generator and the
helpers benchmarks/ uses to start servers and drive them.

Reading the figures. requests/s is responses completed in the measured window
(after --warmup) divided by its length; latencies come from a histogram whose
percentiles are within 1% of the exact ones. With --rate, latency counts from
when each request was meant to be sent, so stalls are not hidden. On a shared
or small machine the generator, the server and everything else compete for
the same cores: absolute numbers move by tens of percent from run to run, while
the ratio between two servers measured alternately in one session moves much
less. Compare within one run (benchmarks/compare.py alternates servers for
this), and trust a figure only when the generator is not flagged as
saturated.
"""

from .cli import main, run
from .histogram import Histogram
from .load import LoadConfig, build_request, run_worker
from .runner import BenchError, run_load

__all__ = ["main", "run", "run_load", "run_worker", "LoadConfig", "build_request",
           "Histogram", "BenchError"]

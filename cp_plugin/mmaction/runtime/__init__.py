"""Training and test infrastructure for mmaction2 runs: nothing here is CP's maths.

- :mod:`.runner`: ``WeightsOnlyRunner``, mmengine's Runner with checkpoint loads allowed to read
  mmengine's own objects (scoped to those loads); ``build_runner``, the runner a config names
  (else that one).
- :mod:`.amp`: mixed precision on the CPU and float32 class scores.
- :mod:`.hooks`: random state saved in checkpoints; a check that ranks agree.
- :mod:`.distributed`: multi-process training on CPUs (gloo).
- :mod:`.sample_errors`: name the sample behind a read failure.
- :mod:`.progress`: a progress bar per training run, mmengine's console output to a file.
"""
from .amp import Float32ScoresHook, MixedPrecisionOptimWrapper
from .distributed import use_cpu_distributed
from .hooks import RandomStateHook, RankAgreementHook
from .runner import WeightsOnlyRunner, build_runner
from .sample_errors import NameReadFailures, SampleLoadError

__all__ = ["Float32ScoresHook", "MixedPrecisionOptimWrapper", "NameReadFailures",
           "RandomStateHook", "RankAgreementHook", "SampleLoadError", "WeightsOnlyRunner", "build_runner",
           "use_cpu_distributed"]

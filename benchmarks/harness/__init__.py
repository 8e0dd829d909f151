"""The benchmark harness behind ``benchmarks/run_benchmarks.py`` (the command line).

Modules:

- :mod:`.common`: paths, constants, :class:`~.common.Settings`, finding Rscript and the interlace-lme venv.
- :mod:`.simulate`: the simulated data sets.
- :mod:`.workloads`: the workloads (model, data, per-tool settings) and their targets.
- :mod:`.measure`: the runner side of the worker protocol (launcher, timeout, peak memory, median).
- :mod:`.tools`: one :class:`~.tools.Tool` per benchmarked tool (lme4, interlace, statsmodels, mixedlm,
  interlace-lme).
- :mod:`.pyworkers`: the worker side of the tools that run in this Python.
- :mod:`.runner`: workloads × tools, and the run's metadata.
- :mod:`.agreement`: each tool's estimates against lme4's in the same run.
- :mod:`.environment`: machine, versions, git state.
- :mod:`.results` and :mod:`.report`: the raw results (JSON) and the ``docs/benchmarks.md`` page.

The worker side shared by every Python tool (spec/result protocol, timing loop, data
loading) is in ``benchmarks/interlace_lme_worker.py``, which has to stay standalone.
"""

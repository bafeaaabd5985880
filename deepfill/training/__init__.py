"""Training DeepFill v1 as a library: Algorithm 1 (``algorithm``), data-parallel agreement (``parallel``),
the checkpoint/resume state (``state``), the run's log (``run_log``), the trainer that ties them together
(``trainer``) and the loop with its stop signals (``loop``). ``train.py`` is a thin command over ``loop``."""

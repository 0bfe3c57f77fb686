"""Workflows: one module per job, each a function of a run and a frozen options object.

Every ``evonas`` command builds an options object, calls one job and prints its
result; benchmarks and tests call the same functions. A job validates all of its
options before any expensive work (training, scoring, loading a supernet).

    evonas.jobs.train            train-supernet
    evonas.jobs.evaluate         eval
    evonas.jobs.profile          profile
    evonas.jobs.search           search
    evonas.jobs.fit_predictor    fit-predictor
    evonas.jobs.predict          predict
    evonas.jobs.export           export (single architectures and top-k)
    evonas.jobs.predictor_bench  predictor-bench
"""

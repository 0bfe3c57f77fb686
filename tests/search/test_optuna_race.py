"""Two Optuna searches started at the same moment on a fresh run directory both finish.

Optuna creates its tables on first use; two processes doing that at once used to fail
(``table alembic_version already exists``, ``table studies already exists``). The
race window is a few milliseconds, so the two processes meet at a barrier right
before the storage is created, on several fresh run directories in turn.
"""

from __future__ import annotations

from tests.procs import worker_context
from tests.synthetic_tables import write_table

ROUNDS = 4  # fresh run directories raced on, one after the other


def _search(runs: list[str], table: str, barrier) -> None:
    from evonas.cli.main import main
    from evonas.search import optuna_search

    sampler = optuna_search.TPESearch.sampler

    def sampler_after_barrier(self):
        barrier.wait(timeout=60)  # both processes go on to create the Optuna storage now
        return sampler(self)

    optuna_search.TPESearch.sampler = sampler_after_barrier
    for run in runs:
        main(["search", "--run", run, "--space", "macro-fmnist", "--table", table, "--target", "val_acc",
              "--algo", "tpe", "--budget", "4", "--seed", "0", "--quiet"])  # an error exits 2


def test_two_tpe_searches_start_together_on_a_fresh_run(tmp_path):
    import optuna

    table = write_table(tmp_path / "macro.csv")
    runs = [tmp_path / f"run{i}" for i in range(ROUNDS)]
    ctx = worker_context()
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_search, args=([str(r) for r in runs], str(table), barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=500)
    assert [p.exitcode for p in procs] == [0, 0]
    for run in runs:
        assert (run / "optuna.db.lock").is_file()  # RunLayout.optuna_lock
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{run / 'optuna.db'}"))
        assert names == ["tpe-s0", "tpe-s0-2"]

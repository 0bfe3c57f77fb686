"""Shared fixtures: a tiny trained supernet on synthetic data, and the shared benchmark tables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from evonas.run.config import TrainConfig
from evonas.scorers.tables import SHARED_NB201

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs the suite in pytest-xdist workers, one per core: each worker, and each process a test
    # starts without a thread count of its own, keeps to one thread so that the workers do not oversubscribe.
    torch.set_num_threads(1)
    if not os.environ.get("OMP_NUM_THREADS"):
        os.environ["OMP_NUM_THREADS"] = "1"
else:
    torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """A job called with ``threads=`` sets torch's thread count for the process; no test leaks it to the next.

    Float sums depend on the thread count, so a leaked count breaks the bit-identity checks of later tests.
    """
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)

def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run only where torch sees a CUDA GPU; elsewhere they are skipped, saying so."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skipif(True, reason="needs a CUDA GPU (torch.cuda.is_available() is False here)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


NB201_CSV = SHARED_NB201 / "nb201.csv"
needs_nb201 = pytest.mark.skipif(not NB201_CSV.is_file(), reason=f"NAS-Bench-201 table not at {NB201_CSV}")


def cli(capsys, *argv) -> tuple[int, str, str]:
    """Run the ``evonas`` command in this process: (exit code, stdout, stderr)."""
    from evonas.cli.main import main

    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def refused_in_one_line(capsys, argv, run: Path) -> str:
    """Run the command ``argv`` that must be refused: exit 2, one ``error:`` line, nothing written at ``run``."""
    code, out, err = cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and not out.strip()
    assert not run.exists()
    return lines[0]


def supernet_weights(run: Path) -> dict[str, torch.Tensor]:
    """The trained supernet's state dict of run directory ``run``."""
    return torch.load(run / "supernet.pt", weights_only=False)["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    """The supernets of runs ``a`` and ``b`` are bit-identical."""
    wa, wb = supernet_weights(a), supernet_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def tiny_config(**changes) -> TrainConfig:
    """A supernet config that trains in about a second on synthetic 28x28 images."""
    base = dict(space="macro-fmnist", dataset="synthetic", val_size=200, epochs=2, batch_size=64, lr=0.05, seed=0)
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory with a trained tiny supernet (shared by the tests that only read it)."""
    from evonas.training.train import train_supernet

    run = tmp_path_factory.mktemp("tiny_run")
    train_supernet(run, tiny_config(), progress=False)
    return run


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Path:
    """A tiny supernet trained on 256 images (four steps an epoch), for the tests that train anchors on its data.

    Stand-alone anchors train on the run's train split, so a quarter of ``tiny_run``'s images makes every
    fit-predictor on it about four times cheaper; the tests that use it check what is stored, reported and
    reused, not how accurate the networks are. Copy it (``shutil.copytree``) before writing to it.
    """
    from evonas.training.train import train_supernet

    run = tmp_path_factory.mktemp("small_run")
    train_supernet(run, tiny_config(train_limit=256), progress=False)
    return run


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL server on a free loopback port (tests/pg.py), stopped at the end of the session.

    Skips, saying why, only where no server can be started here (PostgreSQL or its driver is not installed).
    """
    from tests import pg

    reason = pg.why_unavailable()
    if reason is not None:
        pytest.skip(reason)
    server = pg.start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server, request) -> str:
    """The SQLAlchemy URL of a fresh, empty database on the throwaway PostgreSQL server."""
    import re

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + f"_{id(request) % 100000}"
    return pg_server.create_database(name)

"""`evonas predictor-bench`, driven as a user would, on the real table and on a synthetic one."""

from __future__ import annotations

import json

import numpy as np

from search_spaces import get_space
from tests.conftest import NB201_CSV, needs_nb201
from tests.cli.test_cli_train import run_cli


def synthetic_table(path, n: int = 400) -> None:
    """nb201 cells with a target that rewards FLOPs and a proxy that does not see it."""
    space = get_space("nb201")
    rng = np.random.default_rng(0)
    archs = list(space.enumerate())
    pick = rng.choice(len(archs), n, replace=False)
    lines = ["arch,acc,proxy"]
    for i in pick:
        a = archs[i]
        quality = rng.normal()
        flops = np.log(space.cost(a).flops)
        lines.append(f"{a},{80 + 2 * quality + flops:.4f},{60 + 2 * quality + rng.normal(scale=0.5):.4f}")
    path.write_text("\n".join(lines) + "\n")


def test_bench_json_on_synthetic_table(capsys, tmp_path):
    table = tmp_path / "tab.csv"
    synthetic_table(table)
    code, out, _ = run_cli(capsys, "predictor-bench", "--table", str(table), "--target", "acc", "--proxy", "proxy",
                           "--train-sizes", "10,20", "--seeds", "2", "--predictors", "gap,linear", "--json", "--quiet")
    assert code == 0
    result = json.loads(out)
    rows = {(r["predictor"], r["train_size"]): r for r in result["results"]}
    assert set(rows) == {(p, s) for p in ("gap", "linear", "linear+proxy", "proxy-alone") for s in (10, 20)}
    for r in rows.values():
        assert {"predictor", "train_size", "kendall_tau", "kendall_tau_std"} <= set(r)
    assert rows[("gap", 20)]["kendall_tau"] > rows[("proxy-alone", 20)]["kendall_tau"]


def test_bench_errors_and_text_table(capsys, tmp_path):
    table = tmp_path / "tab.csv"
    synthetic_table(table, n=60)
    code, _, err = run_cli(capsys, "predictor-bench", "--table", str(table), "--target", "acc", "--predictors", "nope")
    assert code == 2 and "choose from" in err
    code, _, err = run_cli(capsys, "predictor-bench", "--table", str(table), "--target", "acc", "--train-sizes", "ten")
    assert code == 2 and "--train-sizes" in err
    code, _, err = run_cli(capsys, "predictor-bench", "--table", str(table), "--target", "acc", "--proxy", "nocol")
    assert code == 2 and "nocol" in err
    code, out, _ = run_cli(capsys, "predictor-bench", "--table", str(table), "--target", "acc",
                           "--train-sizes", "10", "--seeds", "1", "--predictors", "linear", "--quiet")
    assert code == 0 and "linear" in out and "tau" in out


@needs_nb201
def test_bench_on_nb201_gap_beats_proxy_at_20(capsys):
    code, out, _ = run_cli(capsys, "predictor-bench", "--table", str(NB201_CSV), "--target", "cifar10_valid_acc",
                           "--proxy", "cifar10_valid_acc_12ep", "--train-sizes", "10,20", "--seeds", "2",
                           "--predictors", "gap,xgb", "--json", "--quiet")
    assert code == 0
    result = json.loads(out)
    rows = {(r["predictor"], r["train_size"]): r for r in result["results"]}
    assert abs(rows[("proxy-alone", 20)]["kendall_tau"] - 0.65) < 0.01
    assert rows[("gap", 20)]["kendall_tau"] > rows[("proxy-alone", 20)]["kendall_tau"] + 0.05
    assert {"xgb", "xgb+proxy"} <= {p for p, _ in rows}

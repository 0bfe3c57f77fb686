"""The error types and the command-line wording of engine messages."""

from __future__ import annotations

import pickle

import pytest

from search_spaces import UnknownNameError

from evonas.errors import ConfigError, EvonasError, RunDirError, cli_message, flag_name


def test_config_error_is_a_value_error_with_an_optional_param():
    exc = ConfigError("The 'max_flops' parameter must be a finite number > 0; got -1.", param="max_flops")
    assert isinstance(exc, ValueError) and isinstance(exc, EvonasError)
    assert exc.param == "max_flops"
    assert ConfigError("no parameter").param is None
    with pytest.raises(TypeError):
        ConfigError("positional param is refused", "max_flops")  # keyword-only


def test_config_error_pickles_with_its_param():
    exc = pickle.loads(pickle.dumps(ConfigError("bad", param="top_k")))
    assert str(exc) == "bad" and exc.param == "top_k"


@pytest.mark.parametrize("param, flag", [
    ("max_flops", "--max-flops"), ("max_latency_ms", "--max-latency-ms"), ("budget", "--budget"),
    ("n_anchors", "--anchors"), ("run_dir", "--run"), ("archs_file", "--archs"),
])
def test_flag_name(param, flag):
    assert flag_name(param) == flag


def test_cli_message_rewrites_parameter_phrases_to_flags():
    exc = ConfigError("The 'max_flops' parameter must be a finite number > 0; got -1.")
    assert cli_message(exc) == "--max-flops must be a finite number > 0; got -1."
    exc = ConfigError("The 'n_anchors' parameter must be at least 4; got 2; the 'run_dir' parameter is fine")
    assert cli_message(exc) == "--anchors must be at least 4; got 2; --run is fine"
    exc = ConfigError("The 'table' option is not accepted by scorer 'supernet'; valid options: run_dir")
    assert cli_message(exc) == "--table is not accepted by --scorer supernet; valid options: run_dir"
    exc = ConfigError("The 'population' parameter does not apply to searcher 'optuna-nsga2'")
    assert cli_message(exc) == "--population does not apply to --algo optuna-nsga2"


def test_cli_message_puts_a_parenthesised_value_after_the_flag():
    exc = ConfigError("The 'max_flops' parameter (1,000,000) is infeasible for space 'macro-cifar10'")
    assert cli_message(exc) == "--max-flops 1,000,000 is infeasible for space 'macro-cifar10'"


def test_cli_message_names_an_unmentioned_param():
    assert cli_message(ConfigError("must be >= 1; got 0", param="top_k")) == "--top-k: must be >= 1; got 0"
    exc = ConfigError("The 'top_k' parameter must be >= 1; got 0.", param="top_k")
    assert cli_message(exc) == "--top-k must be >= 1; got 0."


def test_cli_message_is_one_line_and_leaves_other_text_alone():
    exc = RunDirError("runs/x has no supernet weights;\n  train them with `evonas train-supernet --run runs/x`")
    assert cli_message(exc) == "runs/x has no supernet weights; train them with `evonas train-supernet --run runs/x`"
    assert cli_message(ValueError("a 'max_flops' value")) == "a 'max_flops' value"  # no "parameter": not a phrase


def test_cli_message_unquotes_key_errors():
    assert cli_message(KeyError("unknown thing 'x'")) == "unknown thing 'x'"
    assert cli_message(UnknownNameError("unknown space 'y'; choose one of: a, b")) == "unknown space 'y'; choose one of: a, b"
    assert cli_message(ConfigError("")) == "ConfigError"

"""Latency you can trust: a per-layer lookup table, its device, its noise, and its check.

A chain network's latency is predicted as the sum of its searchable layers' times plus
a fixed part::

    predict(arch) = sum_i table[i, arch[i]] + overhead_ms

One module per concern:

* :mod:`evonas.latency.params`: the checks of the parameters the other modules share.
* :mod:`evonas.latency.device`: the device a table belongs to (``describe_device``, ``device_key``).
* :mod:`evonas.latency.timing`: timing callables (``time_callable``, ``time_interleaved``) and modules per backend.
* :mod:`evonas.latency.table`: ``LatencyEntry``, ``LatencyTable`` and the table's file.
* :mod:`evonas.latency.build`: ``build_latency_table``, each (layer, option) timed alone, and the fixed part.
* :mod:`evonas.latency.networks`: the build's fit to whole networks, timed in groups, and its verdict.
* :mod:`evonas.latency.fit`: the fits themselves (``AdditiveLatencyFit``, ``AffineLatencyFit``, ``choose_table``).
* :mod:`evonas.latency.validate`: ``validate_latency``, ``rank_metrics``, ``retest_tau`` and the machine's drift.
* :mod:`evonas.latency.runs`: the tables of a run directory (``table_path``, ``load_or_build_table``).

The ONNX models the onnxruntime backend chains are composed by :mod:`evonas.export.onnx`.
"""

"""evonas: weight-sharing neural architecture search on a laptop.

Train a supernet once (SPOS), search it under FLOPs/params/latency limits, correct
its optimization gap with predictors fitted on stand-alone anchors, and export the
best sub-networks as plain PyTorch modules.
"""

__version__ = "0.1.0"

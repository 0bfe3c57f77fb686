"""Training: the supernet (with a registered strategy: uniform SPOS, fair, sandwich, few-shot, landmark) and stand-alone networks.

``loop`` holds the optimizer, schedule and epoch loop; ``strategies`` the registry of
supernet training strategies; ``supernet`` and ``standalone`` the two entry points
(``train`` re-exports them for older imports).
"""

from evonas.training import landmark as _landmark  # noqa: E402,F401  (registers the 'landmark' strategy)

"""Export: standalone modules with inherited weights, and the top-k report."""

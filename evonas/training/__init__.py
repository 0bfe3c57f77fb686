"""Training: the supernet (one sampled path per step) and stand-alone networks."""

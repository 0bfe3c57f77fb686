"""What a sub-network scores and costs: BN-recalibrated accuracy with inherited weights, FLOPs and params."""

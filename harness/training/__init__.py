"""Training: log parsers, loss curves, convergence and alignment checks, throughput."""

"""vigie's benchmarks (``make bench``): each compares vigie with the naive way in one run."""

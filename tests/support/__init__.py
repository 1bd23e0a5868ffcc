"""What the tests, the soak tool (`tools/soak.py`) and the benchmark (`benchmarks/run.py`)
share: OSC packet builders, the one OSC test client, router-process helpers, percentiles."""

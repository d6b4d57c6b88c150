"""Simulated capacity of vLLM, Sarathi-Serve, DistServe and agentflow on the six scenarios.

    python benchmarks/capacity_sim.py                      # all scenarios, writes results
    python benchmarks/capacity_sim.py --speculation        # + draft model (OPT-125m)
    python benchmarks/capacity_sim.py --quick --scenario coding   # < 60 s, writes nothing

Full runs write benchmarks/results/capacity_sim.json and capacity_sim.png (A100 OPT-13B TP2
profile: the SLOs-Serve authors' fitted step-time coefficients); with `--speculation`,
capacity_sim_spec.json and .png. See
agentflow/workloads/bench.py for what is measured.
"""

from __future__ import annotations

import sys
from pathlib import Path

from agentflow.workloads.bench import run_capacity_cli

RESULTS = Path(__file__).resolve().parent / "results"


if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--quick" not in argv:
        stem = "capacity_sim_spec" if "--speculation" in argv else "capacity_sim"
        if "--out" not in argv:
            argv += ["--out", str(RESULTS / f"{stem}.json")]
        if "--plot" not in argv:
            argv += ["--plot", str(RESULTS / f"{stem}.png")]
    run_capacity_cli(argv)

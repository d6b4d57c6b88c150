"""Workloads: arrival processes, length distributions, the six scenarios, capacity search."""

from agentflow.workloads.arrivals import ArrivalProcess, PoissonArrivals, TraceArrivals, time_scale
from agentflow.workloads.azure import AzureTrace, default_data_dir, load_azure_trace
from agentflow.workloads.capacity import (
    CapacityResult,
    CapacitySettings,
    ProbeResult,
    bisect_capacity,
    find_capacity,
    probe,
    score,
)
from agentflow.workloads.lengths import EmpiricalLengths, LengthDistribution, LogNormalLengths
from agentflow.workloads.planning import ReplicaPlan, plan_replicas, run_plan_cli
from agentflow.workloads.scenarios import (
    ARRIVAL_NAMES,
    SCENARIO_NAMES,
    AzureScenario,
    MixedScenario,
    ProgramArrival,
    Scenario,
    StageCall,
    StageSLO,
    SyntheticScenario,
    build_trace,
    get_scenario,
    make_arrivals,
)

__all__ = [
    "ARRIVAL_NAMES",
    "SCENARIO_NAMES",
    "ArrivalProcess",
    "AzureScenario",
    "AzureTrace",
    "CapacityResult",
    "CapacitySettings",
    "EmpiricalLengths",
    "LengthDistribution",
    "LogNormalLengths",
    "MixedScenario",
    "PoissonArrivals",
    "ProbeResult",
    "ProgramArrival",
    "ReplicaPlan",
    "Scenario",
    "StageCall",
    "StageSLO",
    "SyntheticScenario",
    "TraceArrivals",
    "bisect_capacity",
    "build_trace",
    "default_data_dir",
    "find_capacity",
    "get_scenario",
    "load_azure_trace",
    "make_arrivals",
    "plan_replicas",
    "probe",
    "run_plan_cli",
    "score",
    "time_scale",
]

"""The Azure LLM inference traces (2023): arrival times and token lengths of real services.

Two CSVs (columns TIMESTAMP, ContextTokens, GeneratedTokens) from github.com/Azure/
AzurePublicDataset, CC-BY 4.0, cite Patel et al., "Splitwise", ISCA 2024: `code` (~8.8k
requests of a coding assistant) and `conv` (~19.4k requests of a chat service), both one hour
on 2023-11-16. SLOs-Serve uses them for its coding and chatbot scenarios.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from agentflow.errors import ConfigError

__all__ = ["AzureTrace", "TraceKind", "default_data_dir", "load_azure_trace"]

TraceKind = Literal["code", "conv"]
DATA_DIR_ENV = "AGENTFLOW_DATA_DIR"


@dataclass(frozen=True, slots=True)
class AzureTrace:
    """One trace as arrays, in file order (sorted by time)."""

    kind: str
    arrival_s: npt.NDArray[np.float64]
    """Seconds since the first request."""
    prompt_tokens: npt.NDArray[np.int64]
    output_tokens: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def mean_rate_rps(self) -> float:
        """Requests per second over the whole trace."""
        return (len(self) - 1) / float(self.arrival_s[-1] - self.arrival_s[0])


def default_data_dir() -> Path:
    """`$AGENTFLOW_DATA_DIR`, else the copy shipped in the package.

    The traces are CC-BY 4.0 (see data/SOURCES.md); shipping them lets a clean clone and an
    installed wheel work without the shared folder.
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "data"


def _parse_time(text: str) -> float:
    # Seven fractional digits: more than %f takes, and the sub-microsecond part is noise.
    stamp, _, frac = text.partition(".")
    base = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timestamp()
    return base + (float("0." + frac) if frac else 0.0)


@cache
def _load(path: Path, kind: str) -> AzureTrace:
    times: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            times.append(_parse_time(row["TIMESTAMP"]))
            prompts.append(int(row["ContextTokens"]))
            outputs.append(int(row["GeneratedTokens"]))
    if not times:
        raise ConfigError(f"azure trace {path} is empty")
    arrival = np.asarray(times, dtype=np.float64)
    order = np.argsort(arrival, kind="stable")
    arrival = arrival[order] - arrival[order][0]
    return AzureTrace(
        kind=kind,
        arrival_s=arrival,
        prompt_tokens=np.asarray(prompts, dtype=np.int64)[order],
        output_tokens=np.asarray(outputs, dtype=np.int64)[order],
    )


def load_azure_trace(kind: TraceKind, data_dir: Path | None = None) -> AzureTrace:
    """Load `AzureLLMInferenceTrace_{kind}.csv` (cached per path).

    Raises:
        ConfigError: the file is missing (set AGENTFLOW_DATA_DIR) or empty.
    """
    path = (data_dir or default_data_dir()) / f"AzureLLMInferenceTrace_{kind}.csv"
    if not path.is_file():
        raise ConfigError(
            f"azure trace not found at {path}; set {DATA_DIR_ENV} to the folder holding "
            "AzureLLMInferenceTrace_code.csv and AzureLLMInferenceTrace_conv.csv"
        )
    return _load(path, kind)

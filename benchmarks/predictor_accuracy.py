"""Step-time predictor accuracy on the real vLLM CPU engine (held-out batches).

Runs the profiling grid (lone prefills, decode batches, prefills landing among decodes) on the
real engine, fits the predictor on 75 % of the measured steps and scores it on the other 25 %:
R², MAPE and p90 absolute percentage error. The baseline, scored on the same held-out steps, is
the default CPU profile fitted to DESIGN.md's hand-measured numbers.

Rerun: `.venv/bin/python benchmarks/predictor_accuracy.py [--quick] [--model DIR]`
Writes benchmarks/results/predictor_accuracy.json and predictor_accuracy.png.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import anyio
import numpy as np

from agentflow.engine.vllm import VLLMEngineConfig
from agentflow.engine.vllm.profiling import ProfileGrid, measure_steps, split_samples
from agentflow.models import resolve_model
from agentflow.planner import StepSample, StepTimePredictor, evaluate

RESULTS = Path(__file__).parent / "results"


def _predict_ms(predictor: StepTimePredictor, samples: list[StepSample]) -> np.ndarray:
    return np.array([predictor.predict_s(s) * 1e3 for s in samples])


def _scores(predictor: StepTimePredictor, samples: list[StepSample]) -> dict[str, float]:
    actual = np.array([s.step_time_s * 1e3 for s in samples])
    ape = np.abs(_predict_ms(predictor, samples) - actual) / actual
    return {**evaluate(predictor, samples), "p90_ape": float(np.percentile(ape, 90))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    config = VLLMEngineConfig(model=resolve_model(args.model), max_num_batched_tokens=512)
    grid = ProfileGrid.quick() if args.quick else ProfileGrid()
    samples = anyio.run(measure_steps, config, grid)
    train, held_out = split_samples(samples)
    fitted = StepTimePredictor.fit(train)
    baseline = StepTimePredictor.default_cpu()
    ours, base = _scores(fitted, held_out), _scores(baseline, held_out)
    print(f"{len(samples)} steps measured; {len(held_out)} held out")
    print(f"{'':18}{'R²':>8}{'MAPE':>8}{'p90 APE':>9}")
    for name, row in (("fitted", ours), ("default profile", base)):
        print(f"{name:18}{row['r2']:8.3f}{row['mape']:8.1%}{row['p90_ape']:9.1%}")
    print(f"MAPE ratio default/fitted: {base['mape'] / ours['mape']:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "model": config.model.name,
        "r2": ours["r2"],
        "mape": ours["mape"],
        "grid": "quick" if args.quick else "full",
        "num_steps": len(samples),
        "num_held_out": len(held_out),
        "fitted": ours,
        "baseline_default_profile": base,
        "mape_ratio_baseline_over_fitted": base["mape"] / ours["mape"],
        "predictor": json.loads(fitted.to_json()),
    }
    (RESULTS / "predictor_accuracy.json").write_text(json.dumps(payload, indent=2))
    _plot(fitted, held_out)


def _plot(predictor: StepTimePredictor, held_out: list[StepSample]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    actual = [s.step_time_s * 1e3 for s in held_out]
    predicted = _predict_ms(predictor, held_out)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(actual, predicted, s=10, alpha=0.6)
    top = max(max(actual), float(predicted.max())) * 1.05
    ax.plot([0, top], [0, top], "k--", lw=1)
    ax.set(xlabel="measured step (ms)", ylabel="predicted step (ms)", title="held-out steps")
    fig.tight_layout()
    fig.savefig(RESULTS / "predictor_accuracy.png", dpi=120)


if __name__ == "__main__":
    main()

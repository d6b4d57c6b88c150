"""Fitted step-time profiles are found by model and hardware, in a folder the user can move."""

from __future__ import annotations

from pathlib import Path

from agentflow.engine.vllm.profile_store import hardware_id, load_profile, profile_path
from agentflow.planner import StepTimePredictor


def test_a_saved_profile_is_found_again_for_the_same_model(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTFLOW_PROFILES", str(tmp_path))
    model = Path("/models/smollm2-135m-instruct")
    assert load_profile(model) is None
    path = profile_path(model)
    assert path.parent == tmp_path and hardware_id() in path.name
    StepTimePredictor.default_cpu().save(path)
    loaded = load_profile(model)
    assert loaded is not None and loaded.to_json() == StepTimePredictor.default_cpu().to_json()
    assert load_profile(Path("/models/another-model")) is None


def test_profiles_at_different_dtypes_are_kept_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTFLOW_PROFILES", str(tmp_path))
    model = Path("/models/smollm2-135m-instruct")
    StepTimePredictor.default_cpu().save(profile_path(model, "float32"))
    assert load_profile(model, "float32") is not None
    assert load_profile(model, "bfloat16") is None

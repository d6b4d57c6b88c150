"""Reusable stage building blocks with documented default SLOs.

| module        | stages            | default SLO                                             |
|---------------|-------------------|---------------------------------------------------------|
| reasoning     | think → answer    | think: TTFT 3x, TPOT 3x; answer: TTFT 5x, TPOT 8x       |
| tool_loop     | act ⟲ → final     | act: TTFT 3x, TPOT 3x; final: TTFT 5x, TPOT 8x          |
| summarize     | summarize         | TTFT 3x (tight: long input), TPOT 8x (reading speed)    |
| code          | code              | TTFT 5x, TPOT 3x (tight: long output watched live)      |
| chat          | chat              | TTFT 5x, TPOT 8x (loose)                                |

Budgets are relative to the serving engine, so the same stage is tight but feasible on a 2-core
CPU and on a GPU: a TTFT of "Nx" is N times the prompt's isolated prefill time, a TPOT of "Nx"
N times one decode step of the request alone at its longest context. The multiples follow
DESIGN.md's CPU scale (tight TPOT about 2-3x the lone decode step, loose 6-10x); the paper's
GPU presets are tighter in these terms (50 and 100 ms are 2x and 4x the 25 ms lone OPT-7B step
of the simulator's A100 profile). Absolute budgets (`ttft_ms`, `tpot_ms`) hold on one machine
class only: on this repository's 2-core CPU machine a lone SmolLM2-135M decode step took
100-130 ms in recent runs, so a 50 ms TPOT missed on an idle engine.

Each module's stages are plain `agentflow.Stage` objects: call them with `ctx.run(stage, ...)`
in your own agents.
"""

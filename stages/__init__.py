"""Reusable stage building blocks with documented default SLOs.

| module        | stages            | default SLO (CPU scale)                                   |
|---------------|-------------------|-----------------------------------------------------------|
| reasoning     | think → answer    | think: TTFT 400 ms, TPOT 50 ms; answer: TTFT 5x, TPOT 150 ms |
| tool_loop     | act ⟲ → final     | act: TTFT 3x, TPOT 50 ms; final: TTFT 5x, TPOT 150 ms       |
| summarize     | summarize         | TTFT 3x (tight: long input), TPOT 150 ms (reading speed)  |
| code          | code              | TTFT 5x, TPOT 50 ms (tight: long output watched live)     |
| chat          | chat              | TTFT 5x, TPOT 150 ms (loose)                              |

"Nx" is N times the prompt's isolated prefill time on the serving engine. The budgets follow
DESIGN.md's CPU scale (tight TPOT ≈ 2-3x the single-stream decode step, loose ≈ 6-10x); on a
GPU divide them by about 30. Each module's stages are plain `agentflow.Stage` objects: call
them with `ctx.run(stage, ...)` in your own agents.
"""

"""Torch vs onnxruntime on the same inputs: each graph and a whole rollout, max abs difference.

diffs = check_parity(model, "models/sim_tabletop/onnx")   # {"encoder": 2e-6, ...}
"""

from __future__ import annotations

from pathlib import Path

import torch

from wm_ros.export.onnx import example_inputs, torch_graphs
from wm_ros.export.ort import OnnxWorldModel
from wm_ros.model.world_model import WorldModel

TOLERANCE = 1e-3  # max abs difference accepted in fp32 (latents are unit variance)


@torch.no_grad()
def check_parity(
    model: WorldModel, directory: str | Path, *, n: int = 3, steps: int = 2, seed: int = 0
) -> dict[str, float]:
    """Max abs difference between `model` (fp32, CPU) and its export in `directory` for every
    graph on random inputs of batch n (not the export's batch: the axis must be dynamic), and
    for a rollout of n candidates over two chunks with `steps` sampler steps ("rollout")."""
    model = model.to("cpu").eval()
    world = OnnxWorldModel(directory, "cpu")
    graphs = {
        "encoder": world.autoencoder.encoder,
        "decoder": world.autoencoder.decoder,
        "denoiser": world.denoiser,
    }
    if world.adapter is not None:
        graphs["actions"] = world.adapter.graph
    inputs = example_inputs(model.cfg, n=n, seed=seed)
    diffs = {}
    for name, module in torch_graphs(model).items():
        expected = module(*inputs[name].values())
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = graphs[name](inputs[name], [tuple(e.shape) for e in expected])
        diffs[name] = max(float((a - b).abs().max()) for a, b in zip(expected, got, strict=True))
    cfg = model.cfg
    den = inputs["denoiser"]
    cond = inputs["actions"]["cond"] if "actions" in inputs else None
    if cond is not None:  # two chunks: the second is conditioned on the model's own output
        cond = torch.cat([cond, cond.flip(0)], dim=1)
    memory = den["memory"] if cfg.memory else den["context"][:, :0]
    runs = []
    for m in (model, world):
        gen = torch.Generator().manual_seed(seed)
        runs.append(
            m.rollout(
                den["context"],
                memory,
                cond,
                length=2 * cfg.horizon,
                steps=steps,
                generator=gen,
                shared_noise=True,
            )
        )
    diffs["rollout"] = float((runs[0] - runs[1]).abs().max())
    return diffs

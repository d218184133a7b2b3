"""Speed of one batched world-model rollout: N candidates x H future steps x S sampler steps.

What the planner does per CEM iteration, timed in three parts: skeleton prompts of the N x H
candidate joint targets, the world model's few-step sampling of the H future latents of all N
candidates at once (from one encoded context, shared), and both together. Decoding to pixels is
timed apart: the planner's cost works in latent space and decodes only the best candidate.

    python benchmarks/rollout_speed.py --json rollout.json
    python benchmarks/rollout_speed.py --model models/sim_tabletop --n 256 --steps 2 --device cuda

Without a trained model directory (--model missing), the default ModelConfig is built with
random weights: the same networks, so the same speed.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from wm_ros.eval.timing import add_timing_arguments, device_sync, machine_info, timeit


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/sim_tabletop"))
    parser.add_argument("--n", type=int, default=256, help="candidates N")
    parser.add_argument("--steps", type=int, default=2, help="sampler steps")
    add_timing_arguments(parser, repeats=20, warmup=3)
    args = parser.parse_args(argv)

    os.environ.setdefault("MUJOCO_GL", "egl")
    from wm_ros.config import ModelConfig, SimConfig
    from wm_ros.model import WorldModel, load_model
    from wm_ros.model.conditioning import model_prompt_renderer
    from wm_ros.sim import TabletopSim

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = device_sync(device)
    trained = (args.model / "config.json").is_file()
    model = load_model(args.model, device) if trained else WorldModel(ModelConfig()).to(device)
    model.eval()
    cfg = model.cfg
    s = cfg.image_size
    renderer = model_prompt_renderer(cfg, device)
    with TabletopSim(SimConfig(image_width=s, image_height=s)) as sim:
        limits = sim.joint_limits[renderer.joint_order(sim.joint_names)]
        frames = np.stack([sim.render()] * (cfg.context + cfg.memory))
    rng = np.random.default_rng(args.seed)
    q = torch.as_tensor(
        rng.uniform(limits[:, 0], limits[:, 1], size=(args.n, cfg.horizon, len(limits))),
        dtype=torch.float32,
        device=device,
    )  # (N, H, J)
    with torch.inference_mode():
        z = model.encode_frames(frames)  # (M + K, c, h, w)
        mem = z[None, : cfg.memory].expand(args.n, -1, -1, -1, -1)
        ctx = z[None, cfg.memory :].expand(args.n, -1, -1, -1, -1)
        prompts = torch.empty(args.n, cfg.horizon, *renderer.image_shape, device=device)
        gen = torch.Generator(device).manual_seed(args.seed)

        def cond() -> torch.Tensor:
            return renderer.render(q, out=prompts) if cfg.conditioning == "prompt" else q

        def sample(c: torch.Tensor) -> torch.Tensor:
            return model.sample(ctx, mem, c, steps=args.steps, generator=gen)

        c0 = cond()
        latents = sample(c0)
        times = {
            "prompts": timeit(cond, args.repeats, args.warmup, sync),
            "model": timeit(lambda: sample(c0), args.repeats, args.warmup, sync),
            "rollout (prompts + model)": timeit(
                lambda: sample(cond()), args.repeats, args.warmup, sync
            ),
            "decode one candidate": timeit(
                lambda: model.decode(latents[:1]), args.repeats, args.warmup, sync
            ),
        }
    result = {
        "benchmark": "rollout_speed",
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "machine": machine_info(),
        "model": str(args.model) if trained else "untrained default ModelConfig",
        "model_config": cfg.to_dict(),
        "n": args.n,
        "horizon": cfg.horizon,
        "steps": args.steps,
        "repeats": args.repeats,
        "latency_ms": times,
        "candidate_steps_per_s": args.n
        * cfg.horizon
        / (times["rollout (prompts + model)"]["p50"] / 1e3),
    }
    m = result["machine"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['torch_threads']} "
        f"threads, device {result['device']}, load {m['load_average']}"
    )
    print(
        f"model: {result['model']}; {args.n} candidates x {cfg.horizon} steps x "
        f"{args.steps} sampler steps"
    )
    for name, t in times.items():
        print(
            f"  {name:26s}: p50 {t['p50']:8.1f} ms  p95 {t['p95']:8.1f} ms  min {t['min']:8.1f} ms"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

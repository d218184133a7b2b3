"""Speed of skeleton prompts: N x H joint configurations -> (N, H, C, h, w) prompts.

One timed call is the whole path the planner takes: forward kinematics + projection +
rasterisation, on the simulated arm seen by the simulator's camera. Reported: median (p50),
p95 and min over repeats after warm-up, with the output buffer reused across calls (`out=`,
what the planner does) and freshly allocated; and a per-stage breakdown.

    python benchmarks/prompt_speed.py --json speed.json
    python benchmarks/prompt_speed.py --n 256 --horizon 8 --res 64 --threads 2 --device cpu

This machine is shared: the load average before and after is printed and stored with the
figures, since other processes on a 2-core machine move the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import numpy as np
import torch

from wm_ros.eval.timing import add_timing_arguments, cpu_model, device_sync, timeit


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="candidates N")
    parser.add_argument("--horizon", type=int, default=8, help="future steps H")
    parser.add_argument("--res", type=int, default=64, help="prompt size, pixels (square)")
    add_timing_arguments(parser, repeats=50, warmup=5)
    args = parser.parse_args(argv)

    os.environ.setdefault("MUJOCO_GL", "egl")
    from wm_ros.config import PromptConfig, SimConfig
    from wm_ros.prompts import sim_prompt_renderer
    from wm_ros.sim import TabletopSim

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = device_sync(device)
    cfg = PromptConfig(image_width=args.res, image_height=args.res)
    with TabletopSim(SimConfig()) as sim:
        renderer = sim_prompt_renderer(sim, cfg, device=str(device))
        limits = sim.joint_limits[renderer.joint_order(sim.joint_names)]
    rng = np.random.default_rng(args.seed)
    q_np = rng.uniform(limits[:, 0], limits[:, 1], size=(args.n, args.horizon, len(limits)))
    q = torch.as_tensor(q_np, dtype=torch.float32, device=device)  # (N, H, J)
    out = torch.empty(args.n, args.horizon, *renderer.image_shape, device=device)

    load_before = os.getloadavg()
    reused = timeit(lambda: renderer.render(q, out=out), args.repeats, args.warmup, sync)
    fresh = timeit(lambda: renderer.render(q), max(5, args.repeats // 5), 2, sync)

    # Per-stage breakdown (each stage timed on its own; they add up to about one call).
    sk = renderer.skeleton
    flat_q = q.reshape(-1, q.shape[-1])
    points = renderer.fk.points(flat_q, sk.keypoint_links, sk.keypoint_offsets)
    uv, depth = renderer.project(flat_q)
    raster = renderer.rasterizer
    keys, index = raster.draw(uv, depth)
    # The key map and the index are workspaces that the key_map stage reuses.
    keys, index = keys.clone(), index.clone()
    flat_out = out.view(-1, *renderer.image_shape)

    def decode() -> None:
        raster.decode(keys, index, flat_out)

    from wm_ros.camera import project_points

    stages = {
        "fk": timeit(
            lambda: renderer.fk.points(flat_q, sk.keypoint_links, sk.keypoint_offsets),
            args.repeats,
            args.warmup,
            sync,
        )["p50"],
        "projection": timeit(
            lambda: project_points(points, renderer.camera), args.repeats, args.warmup, sync
        )["p50"],
        "key_map (candidates + scatter)": timeit(
            lambda: raster.key_map(uv, depth), args.repeats, args.warmup, sync
        )["p50"],
        "decode (zero + write drawn pixels)": timeit(decode, args.repeats, args.warmup, sync)[
            "p50"
        ],
    }
    load_after = os.getloadavg()

    result = {
        "benchmark": "prompt_speed",
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in load_after],
        },
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "n": args.n,
        "horizon": args.horizon,
        "res": args.res,
        "channels": raster.channels,
        "repeats": args.repeats,
        "config": cfg.to_dict(),
        "skeleton": {"keypoints": list(sk.keypoint_names), "edges": len(sk.edges)},
        "latency_ms": {"reused_out": reused, "fresh_out": fresh},
        "stages_p50_ms": stages,
        "prompts_per_s": args.n * args.horizon / (reused["p50"] / 1e3),
    }
    machine = result["machine"]
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, torch {result['torch']}, "
        f"{result['threads']} threads, device {result['device']}"
    )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    shape = f"{raster.channels} x {args.res} x {args.res}"
    print(
        f"config: {args.n} x {args.horizon} prompts of {shape}, skeleton "
        f"{len(sk.keypoint_names)} keypoints / {len(sk.edges)} edges"
    )
    for name, t in result["latency_ms"].items():
        print(
            f"  {name:10s}: p50 {t['p50']:7.2f} ms  p95 {t['p95']:7.2f} ms  min {t['min']:7.2f} ms"
        )
    for name, t in stages.items():
        print(f"  stage {name:32s} p50 {t:7.2f} ms")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

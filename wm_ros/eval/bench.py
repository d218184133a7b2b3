"""`wm-ros bench`: replans per second over a grid of N, H, I, sampler steps and resolution.

    wm-ros bench --json bench.json --n 64,256 --horizon 4,8 --iters 2,3 --steps 1,2
    wm-ros bench --json gpu.json --device cuda --backend torch,onnxruntime --precision fp32,bf16

Each grid point is a whole replan through a PlanningSession (the planner_node's code path):
encode the context frames, I CEM iterations of N candidates x H steps (sample, FK, prompts, the
world model's few-step sampling, cost, refit), no imagined frames (the node draws those only
when someone watches). Settings not on the grid come from config/planner.yaml; observations come
from the simulator at the grid's resolution. Where (res, H) differ from the model's, a model of
the same architecture with random weights stands in: the same networks, so the same speed
("weights" says which).

Beside the replan latency it reports
- a per-stage breakdown (each stage timed on its own at the replan's shapes, per replan):
  encode (context frames), fk (+ projection), prompts (raster), actions (the adapter's prompt
  encoder), denoiser (sampler steps x base + adapter, Euler updates), cost, cem_update
  (sampling, projection, elites, refit), other (the rest of the measured p50);
- the FLOPs of a replan and of one denoiser evaluation (torch.utils.flop_counter: convolutions
  and matmuls, the work that matters here), the FLOP/s achieved, and the device's peak: measured
  with a large matmul on this device, beside the datasheet figure for known GPUs;
- a plot of latency against N and against H (the JSON path with .png).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# Dense datasheet peaks, FLOP/s (no sparsity): (name fragment, fp32 non-tensor, bf16 tensor).
GPU_PEAKS = (
    ("H200", 67e12, 989e12),
    ("H100 PCIe", 51e12, 756e12),
    ("H100", 67e12, 989e12),
    ("A100", 19.5e12, 312e12),
    ("L40S", 91.6e12, 362e12),
    ("L4", 30.3e12, 121e12),
    ("A10G", 31.2e12, 70e12),
    ("RTX 4090", 82.6e12, 165e12),
)


def int_list(text: str) -> list[int]:
    """ "64,256" -> [64, 256]: positive integers, for argparse (ArgumentTypeError otherwise)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def choice_list(*choices: str) -> Callable[[str], list[str]]:
    """An argparse type: "torch,onnxruntime" -> ["torch", "onnxruntime"], each one of
    `choices` (ArgumentTypeError otherwise)."""

    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in choices]
        if not values or bad:
            raise argparse.ArgumentTypeError(f"expected some of {list(choices)}, got {text!r}")
        return values

    return parse


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `wm-ros bench` (the handler is set as `func`)."""
    from wm_ros.eval.timing import add_timing_arguments

    parser.add_argument("--model", default="models/sim_tabletop", help="model directory")
    parser.add_argument("--params-file", type=Path, help="planner_node params (default: shipped)")
    parser.add_argument("--backend", type=choice_list("torch", "onnxruntime"), default=["torch"])
    parser.add_argument("--precision", type=choice_list("fp32", "bf16"), default=["fp32"])
    parser.add_argument("--cuda-graphs", action="store_true", help="torch on CUDA: CUDA graphs")
    parser.add_argument("--n", type=int_list, default=[64], help="candidates N (list)")
    parser.add_argument("--horizon", type=int_list, default=[4], help="steps H (list)")
    parser.add_argument("--iters", type=int_list, default=[2], help="CEM iterations I (list)")
    parser.add_argument("--steps", type=int_list, default=[1], help="sampler steps (list)")
    parser.add_argument("--res", type=int_list, default=[64], help="image size, px (list)")
    parser.add_argument("--no-stages", action="store_true", help="skip the stage breakdown")
    parser.add_argument("--plot", type=Path, help="PNG of cost vs N and H (default: --json .png)")
    add_timing_arguments(parser, repeats=10, warmup=2)
    parser.set_defaults(func=run_bench_command)


def run_bench_command(args: argparse.Namespace) -> int:
    """The CLI handler: bad input -> a message on stderr and exit code 2."""
    from wm_ros.model import CheckpointError
    from wm_ros.planning.session import resolve_model_dir

    directory = resolve_model_dir(args.model)
    bad = [r for r in args.res if r % 4 or r < 8]
    problem = None
    if not (directory / "config.json").is_file():
        problem = f"model directory {args.model} not found (no config.json in {directory})"
    elif bad:
        problem = f"--res must be multiples of 4, >= 8; got {bad}"
    elif args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            problem = "--device cuda: no CUDA device here"
    if problem:
        log.error("wm-ros bench: %s", problem)
        return 2
    try:
        result = run_bench(args, directory)
    except (CheckpointError, ValueError) as err:
        log.error("wm-ros bench: %s", err)
        return 2
    for r in result["results"]:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r.get("stages_ms", {}).items())
        log.info(
            "%s %s N=%d H=%d I=%d steps=%d res=%d: %.2f replans/s, p50 %.1f ms, p95 %.1f ms%s",
            r["backend"], r["precision"], r["n"], r["horizon"], r["iters"], r["steps"],
            r["res"], r["replans_per_s"], r["latency_ms"]["p50"], r["latency_ms"]["p95"],
            f"; stages ms: {stages}" if stages else "",
        )  # fmt: skip
        if "achieved" in r:
            a = r["achieved"]
            log.info(
                "  %.3f GFLOP per replan; denoiser %.2f GFLOP/s = %.1f%% of the peak",
                r["flops"]["per_replan"] / 1e9,
                a["denoiser_flop_s"] / 1e9,
                100 * a["denoiser_fraction_of_peak"],
            )
    log.info("device %s, peak %s; figures in %s", result["device"], result["peak"], args.json)
    return 0


def measured_peak(device, dtype, size: int = 1024, repeats: int = 8) -> dict[str, float]:
    """FLOP/s of a (size x size) @ (size x size) matmul on `device` in `dtype` (best of
    `repeats`), by torch and, for fp32 on CPU, by onnxruntime too (their CPU kernels differ:
    MKL vs MLAS): the compute peak this machine actually reaches, as a reference."""
    import torch

    from wm_ros.eval.timing import device_sync, timeit

    g = torch.Generator(device).manual_seed(0)
    a = torch.randn(size, size, device=device, generator=g).to(dtype)
    b = torch.randn(size, size, device=device, generator=g).to(dtype)
    flops = 2 * size**3
    out = {"torch": flops / (timeit(lambda: a @ b, repeats, 1, device_sync(device))["min"] / 1e3)}
    if device.type == "cpu" and dtype == torch.float32:
        try:
            import onnx
            import onnxruntime as ort
        except ImportError:
            return out
        h = onnx.helper
        tensor = onnx.TensorProto.FLOAT
        graph = h.make_graph(
            [h.make_node("MatMul", ["a", "b"], ["c"])],
            "matmul",
            [h.make_tensor_value_info(n, tensor, [size, size]) for n in "ab"],
            [h.make_tensor_value_info("c", tensor, [size, size])],
        )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)], ir_version=10)
        sess = ort.InferenceSession(model.SerializeToString(), opts, ["CPUExecutionProvider"])
        feed = {"a": a.numpy(), "b": b.numpy()}
        out["onnxruntime"] = flops / (timeit(lambda: sess.run(None, feed), repeats, 1)["min"] / 1e3)
    return out


def datasheet_peak(name: str) -> dict | None:
    """Dense datasheet peaks of a GPU by its device name (GPU_PEAKS), FLOP/s: {"gpu",
    "fp32_flop_s", "bf16_flop_s"}, or None for a GPU not in the table."""
    for fragment, fp32, bf16 in GPU_PEAKS:
        if fragment in name:
            return {"gpu": fragment, "fp32_flop_s": fp32, "bf16_flop_s": bf16}
    return None


def count_flops(fn) -> int:
    """Convolution and matmul FLOPs of fn() (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _no_grad(fn):
    """torch.no_grad as a decorator, without importing torch at module load."""

    def wrapped(*args, **kwargs):
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapped


class _Point:
    """One grid point's session, fed with simulator observations, ready to replan."""

    def __init__(self, args, model, model_dir: Path, base_cfg, grid: dict, *, backend, precision):
        import numpy as np

        from wm_ros.config import SimConfig
        from wm_ros.planning.session import PlanningSession
        from wm_ros.sim import TabletopSim

        n, h, iters, steps, res = (grid[k] for k in ("n", "horizon", "iters", "steps", "res"))
        pc = base_cfg.planner
        cem = pc.cem.replace(num_samples=n, num_elites=max(2, min(pc.cem.num_elites, n // 4)))
        planner = pc.replace(
            horizon=h,
            knots=min(pc.knots, h),
            sampler_steps=steps,
            seed=args.seed,
            cem=cem.replace(iterations=iters),
        )
        self.cfg = base_cfg.replace(
            model=str(model_dir),
            device=str(args.device),
            backend=backend,
            precision=precision,
            cuda_graphs=bool(args.cuda_graphs) and backend == "torch",
            planner=planner,
        )
        self.session = PlanningSession(self.cfg, model)
        mc = model.cfg
        with TabletopSim(SimConfig(image_width=res, image_height=res)) as sim:
            sim.reset(args.seed)
            cam = sim.camera_model()
            self.session.set_camera(cam.width, cam.height, cam.k.ravel(), cam.d)
            frame = sim.render()
            frames = mc.memory + mc.context
            for i in range(frames):
                self.session.add_image(frame, i * planner.dt)
            self.now = (frames - 1) * planner.dt
            self.session.set_joints(sim.joint_names, sim.joint_positions(), self.now)
            self.session.set_goal(np.asarray(sim.task.goal_image))

    def replan(self):
        return self.session.replan(self.now, imagine=False)


@_no_grad
def _stages(point: _Point, args, sync) -> tuple[dict, dict, dict]:
    """Per-replan milliseconds of each stage (timed apart at the replan's shapes), the inputs
    of one denoiser evaluation (to time it), and the FLOPs: per replan (encode + I model
    stages), per model stage, per denoiser evaluation and per replan's denoiser evaluations."""
    import torch

    from wm_ros.eval.timing import timeit
    from wm_ros.planning.cem import cem
    from wm_ros.planning.costs import plan_cost

    s = point.session
    cfg, a, world, rollout = s.cfg.planner, s.actions, s.world, s.rollout
    n, iters = cfg.cem.num_samples, cfg.cem.iterations
    reps, warm = max(3, args.repeats // 2), 1
    q = torch.as_tensor(s._joints[0], dtype=torch.float32, device=s.device)
    frames = s.history.frames()
    g = torch.Generator(s.device).manual_seed(args.seed)
    params = a.project(
        cfg.cem.init_std * torch.randn((n, *a.shape), generator=g, device=s.device), q
    )
    targets = a.to_targets(params, q)  # (N, H, J)
    renderer = rollout.renderer
    times = {
        "encode": timeit(lambda: rollout.set_context(frames), reps, warm, sync)["p50"],
    }
    if renderer is not None:
        order = torch.as_tensor(renderer.joint_order(s.joint_names), device=s.device)
        ordered = targets[..., order]
        uv, depth = renderer.project(ordered)
        flat_uv, flat_depth = uv.reshape(-1, *uv.shape[-2:]), depth.reshape(-1, depth.shape[-1])
        buf = torch.empty(flat_uv.shape[0], *renderer.image_shape, device=s.device)
        times["fk"] = timeit(lambda: renderer.project(ordered), reps, warm, sync)["p50"]
        times["prompts"] = timeit(
            lambda: renderer.rasterizer(flat_uv, flat_depth, out=buf), reps, warm, sync
        )["p50"]
        cond = renderer.render(ordered)
    else:
        cond = targets
    ctx = rollout.context[None].expand(n, *rollout.context.shape)
    mem = rollout.memory[None].expand(n, *rollout.memory.shape)

    def model_stage(m=world):
        gen = torch.Generator(s.device).manual_seed(args.seed)
        return m.rollout(
            ctx, mem, cond, length=cfg.horizon, steps=cfg.sampler_steps, generator=gen,
            shared_noise=True,
        )  # fmt: skip

    latents = model_stage()
    model_ms = timeit(model_stage, reps, warm, sync)["p50"]
    # The model stage split: the adapter's action (prompt) encoder, once per rollout chunk,
    # and the rest (sampler steps x denoiser, Euler updates).
    times["actions"] = 0.0
    if world.adapter is not None:
        encode = world.adapter.encode_actions
        times["actions"] = timeit(lambda: encode(cond), reps, warm, sync)["p50"]
    times["denoiser"] = max(0.0, model_ms - times["actions"])
    clipped = torch.zeros(n, device=s.device)

    def cost():
        return plan_cost(
            cfg.cost, latents=latents, goal_latent=s._goal, targets=targets, q0=q,
            clipped_by=clipped,
        )  # fmt: skip

    costs = cost()
    times["cost"] = timeit(cost, reps, warm, sync)["p50"]
    one = cfg.cem.replace(iterations=1)
    mean, std = s.planner.initial_distribution(q, None)

    def update():  # sample, project, to targets, elites, refit: CEM's own work
        return cem(lambda p, c: (a.to_targets(p, q), costs)[1], mean, std, one,
                   project=lambda p: a.project(p, q), generator=g)  # fmt: skip

    times["cem_update"] = timeit(update, reps, warm, sync)["p50"]
    per_replan = {k: v * (1 if k == "encode" else iters) for k, v in times.items()}
    # FLOPs of the torch model (the same networks for every backend), counted by stage: the
    # counter's dispatch overhead would dwarf a whole replan's small ops.
    raw = s.model
    flops = {
        "encode": count_flops(lambda: raw.encode_frames(frames)),
        "model_stage": count_flops(lambda: model_stage(raw)),
        "actions": (
            count_flops(lambda: raw.adapter.encode_actions(cond)) if raw.adapter is not None else 0
        ),
    }
    flops["per_replan"] = flops["encode"] + iters * flops["model_stage"]
    inj = world.adapter.encode_actions(cond) if world.adapter is not None else None
    x = torch.randn((n, cfg.horizon, *world.latent_shape()), generator=g, device=s.device)
    t = torch.zeros(n, device=s.device)
    den = {"x": x, "t": t, "d": t + 1.0 / cfg.sampler_steps, "ctx": ctx, "mem": mem, "inj": inj}
    plain = {**den, "inj": inj and tuple(i.float() for i in inj)}
    flops["denoiser_eval"] = count_flops(_denoiser_call(raw, plain))
    flops["denoiser_per_replan"] = flops["denoiser_eval"] * iters * cfg.sampler_steps
    return per_replan, den, flops


OP_KINDS = (  # aten op name fragments -> where a denoiser evaluation's time goes
    ("conv", "convolution"),
    ("matmul", "addmm", "matmul", "linear", "bmm"),
    ("norm", "group_norm", "layer_norm", "batch_norm"),
    ("activation", "silu", "sigmoid", "gelu"),
    ("copy/layout", "copy_", "cat", "_to_copy", "contiguous", "clone", "upsample"),
    ("elementwise", "add", "mul", "sub", "div"),
)


def op_breakdown(fn, device, calls: int = 2) -> dict[str, float]:
    """Fraction of fn()'s self time (device time on CUDA) per kind of op (OP_KINDS): where
    the time the FLOP counter does not see goes."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    fn()
    with profile(activities=acts) as prof:
        for _ in range(calls):
            fn()
    spent: dict[str, float] = {}
    for e in prof.key_averages():
        if not e.key.startswith("aten::"):
            continue
        t = e.self_device_time_total if cuda else e.self_cpu_time_total
        kind = next((k for k, *frags in OP_KINDS if any(f in e.key for f in frags)), "other")
        spent[kind] = spent.get(kind, 0.0) + t
    total = sum(spent.values()) or 1.0
    return {k: v / total for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}


def _denoiser_call(world, den, eager: bool = False):
    """One denoiser evaluation of `world` on the inputs `den` (eager: bypass CUDA graphs)."""
    if eager and hasattr(world, "_eager_velocity"):  # FastWorldModel
        inj = den["inj"] or ()
        return lambda: world._eager_velocity(
            den["x"], den["t"], den["d"], den["ctx"], den["mem"], *inj
        )
    return lambda: world.velocity_parts(
        den["x"], den["t"], den["d"], den["ctx"], den["mem"], injections=den["inj"]
    )


def run_bench(args: argparse.Namespace, model_dir: Path) -> dict:
    """The benchmark (module doc); returns the JSON document (written to args.json)."""
    import itertools
    import platform

    import numpy as np
    import torch

    from wm_ros.config import planning_session_from_yaml
    from wm_ros.eval.timing import device_sync, machine_info, timeit
    from wm_ros.model import WorldModel, load_model
    from wm_ros.paths import share_dir

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = device_sync(device)
    params = args.params_file or share_dir() / "config" / "planner.yaml"
    base_cfg = planning_session_from_yaml(params)
    trained = load_model(model_dir, device)
    models: dict[tuple[int, int], tuple[WorldModel, str]] = {}

    def model_for(res: int, horizon: int):
        key = (res, horizon)
        if key not in models:
            mc = trained.cfg
            if (mc.image_size, mc.horizon) == key:
                models[key] = (trained, "trained")
            else:
                torch.manual_seed(args.seed)
                cfg = mc.replace(image_size=res, horizon=horizon)
                models[key] = (WorldModel(cfg).to(device).eval(), "random")
        return models[key]

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    size = 8192 if device.type == "cuda" else 1024  # big enough to saturate the device
    measured: dict[str, list[float]] = {"fp32": [], "bf16": []}

    def measure_peaks() -> None:  # again before each row: a busy machine reads low at times
        measured["fp32"].append(max(measured_peak(device, torch.float32, size).values()))
        if "bf16" in args.precision:
            measured["bf16"].append(max(measured_peak(device, torch.bfloat16, size).values()))

    results = []
    grid = itertools.product(args.res, args.horizon, args.n, args.iters, args.steps)
    for res, h, n, iters, steps in grid:
        for backend, precision in itertools.product(args.backend, args.precision):
            if backend == "onnxruntime" and precision != "fp32":
                continue  # onnxruntime runs the fp32 graphs
            point = dict(n=n, horizon=h, iters=iters, steps=steps, res=res)
            model, weights = model_for(res, h)
            measure_peaks()
            p = _Point(
                args, model, model_dir, base_cfg, point, backend=backend, precision=precision
            )
            t = timeit(p.replan, args.repeats, args.warmup, sync)
            row = {
                **point,
                "backend": backend,
                "precision": precision,
                "cuda_graphs": p.cfg.cuda_graphs,
                "weights": weights,
                "replans_per_s": 1e3 / t["mean"],
                "latency_ms": t,
            }
            if not args.no_stages:
                stages, den, flops = _stages(p, args, sync)
                stages["other"] = max(0.0, t["p50"] - sum(stages.values()))
                row["stages_ms"] = stages
                per_replan, den_flops = flops["per_replan"], flops["denoiser_eval"]
                den_ms = timeit(_denoiser_call(p.session.world, den), args.repeats, 1, sync)
                row["flops"] = flops
                if backend == "torch":  # eager, at the row's precision (graphs hide the ops)
                    call = _denoiser_call(p.session.world, den, eager=True)
                    with torch.no_grad():
                        row["denoiser_time_by_op"] = op_breakdown(call, device)
                row["achieved"] = {
                    "replan_flop_s": per_replan / (t["p50"] / 1e3),
                    "denoiser_flop_s": den_flops / (den_ms["p50"] / 1e3),
                    "denoiser_eval_ms": den_ms["p50"],
                }
            log.info("bench %s: %.2f replans/s", row, row["replans_per_s"])
            results.append(row)
    if not measured["fp32"]:
        measure_peaks()
    peak = {
        "fp32_flop_s": max(measured["fp32"]),
        "how": f"measured: fastest {size}x{size} matmul on {name} by torch or onnxruntime, "
        f"{torch.get_num_threads()} threads, best of {len(measured['fp32'])} measurements",
    }
    if measured["bf16"]:
        peak["bf16_flop_s"] = max(measured["bf16"])
    if device.type == "cuda":
        peak["datasheet"] = datasheet_peak(name)
    for row in results:
        if "achieved" in row:
            a, ref = row["achieved"], peak[f"{row['precision']}_flop_s"]
            a["denoiser_fraction_of_peak"] = a["denoiser_flop_s"] / ref
            a["replan_fraction_of_peak"] = a["replan_flop_s"] / ref
            sheet = peak.get("datasheet")
            if sheet:
                a["denoiser_fraction_of_datasheet"] = (
                    a["denoiser_flop_s"] / sheet[f"{row['precision']}_flop_s"]
                )
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    versions["numpy"] = np.__version__
    if "onnxruntime" in args.backend:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    doc = {
        "benchmark": "bench",
        "device": name,
        "machine": machine_info(),
        "versions": versions,
        "model": str(model_dir),
        "model_config": trained.cfg.to_dict(),
        "planner_config": base_cfg.to_dict(),
        "params_file": str(params),
        "seed": args.seed,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": torch.get_num_threads(),
        "peak": peak,
        "results": results,
        "notes": (
            "replans_per_s = 1000 / mean latency; a replan = encode + I CEM iterations, no "
            "imagined frames; stages_ms are timed apart at the same shapes and multiplied by "
            "I; 'other' = p50 - their sum (Python, checks, allocation)."
        ),
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    plot = args.plot or (args.json.with_suffix(".png") if args.json is not None else None)
    if plot is not None:
        plot_scaling(results, plot)
    return doc


def plot_scaling(results: list[dict], png: Path) -> Path | None:
    """Replan latency (p50) against N (one line per H) and against H (one line per N)."""
    from wm_ros.eval.plots import Panel, Series, plot_panels

    def series(x_key: str, by: str) -> list:
        groups: dict[tuple, list] = {}
        for r in results:
            key = (r[by], r["iters"], r["steps"], r["res"], r["backend"], r["precision"])
            groups.setdefault(key, []).append((r[x_key], r["latency_ms"]["p50"]))
        return [
            Series(
                f"{by}={k[0]}, I={k[1]}, steps={k[2]}, {k[3]} px, {k[4]} {k[5]}",
                sorted(pts),
                "both",
            )
            for k, pts in groups.items()
            if len(pts) > 1
        ]

    panels = [
        Panel(
            "replan latency vs N",
            series("n", "horizon"),
            "candidates N",
            "p50 ms",
            log_x=True,
            log_y=True,
        ),
        Panel("replan latency vs H", series("horizon", "n"), "horizon H", "p50 ms", log_y=True),
    ]
    panels = [p for p in panels if p.series]
    if not panels:
        return None
    return plot_panels(panels, png, size=(1100, 360))

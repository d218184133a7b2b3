"""`wm-ros eval replay`: the world model's open-loop predictions scored against a recorded bag,
and (with `--plans`) a recorded closed-loop replay's plans against what the robot did next.

Any rosbag2 bag (sqlite3 or MCAP; from a robot or from `wm-ros collect`) with a camera topic
(sensor_msgs/Image or CompressedImage) and joint states. `wm_ros.ros.replay` reads the streams;
this module (no ROS) aligns them and evaluates:

1. Alignment by stamp (header stamps; the bag's receive stamps where a header is zero). The
   frame period is the median spacing of consecutive frames. A spacing above
   DROP_FACTOR x period is a gap with round(spacing / period) - 1 dropped frames; a spacing
   above JUMP_FACTOR x period, or any backwards step, is a clock jump. Each frame takes the
   joint state nearest in time; a frame with none within `max_joint_gap_s` (default half a
   period) is unmatched. Windows never span a gap, a jump or an unmatched frame: the frames are
   cut into contiguous segments there, and each segment is an Episode.
2. Actions (what the model is conditioned on): "plan" takes the commanded target in force at
   each frame (the latest /wm/plan at or before it: what the model is trained on, and what
   `wm-ros eval predict --data` reads); "joints" takes the recorded joint state of the next
   frame (a robot bag without commands); "auto" is "plan" when the bag has plans.
3. Prediction metrics per horizon step through `wm_ros.eval.predict.evaluate_prediction` (the
   one implementation both commands share), on windows every `stride` frames (default 2H: each
   frame is predicted once) or, with `windows_per_episode`, on the random windows `eval
   predict` draws. Baselines: copy-last (base-only and the autoencoder ceiling on request).
   Arm IoU and puck error need the simulator's segmentation (/sim/segmentation); without it
   (a real robot) only PSNR and SSIM are reported, and the report says so.

Closed loop (`compare_plans`): each plan published during `wm-ros bringup replay` is stamped
with the image it was planned from; its targets at stamp + time_from_start are compared with
the joint positions the bag recorded at those times (linear interpolation), beside "hold" (the
joints at the plan's stamp held): mean absolute joint error per plan step, rad. Planning latency
comes from the planner's /diagnostics.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wm_ros.data import Episode

log = logging.getLogger(__name__)

DROP_FACTOR = 1.5  # frame spacing (x period) above which frames were dropped
JUMP_FACTOR = 10.0  # frame spacing (x period) above which the clock jumped
ACTION_SOURCES = ("auto", "plan", "joints")


class ReplayDataError(ValueError):
    """A bag that cannot be evaluated; the message names the bag and what is wrong."""


@dataclass
class RecordedStreams:
    """A bag's streams as numpy, in recording order (built by wm_ros.ros.replay.read_streams).

    Attributes:
        bag: the bag path; storage: "mcap" or "sqlite3".
        frames: F (H, W, 3) uint8 RGB images; frame_ns: (F,) int64 stamps, ns.
        joint_names: the J joint columns; joint_ns: (Q,) stamps; joints: (Q, J) positions, rad.
        plan_ns: (P,) stamps and plans: (P, J) first targets of the commanded trajectories, or
            None when the bag has no plan topic.
        label_ns: (G,) stamps and labels: G (H, W) uint8 segmentation images, or None.
        topics: what was read: role -> "topic [type]".
        stamp_source: "header" or "bag" (receive stamps, where headers were zero).
        problems: what went wrong while reading (truncation, undecodable messages).
        partial: reading stopped early (truncated or corrupt storage): results cover a prefix.
    """

    bag: str
    storage: str
    frames: list[np.ndarray]
    frame_ns: np.ndarray
    joint_names: tuple[str, ...]
    joint_ns: np.ndarray
    joints: np.ndarray
    plan_ns: np.ndarray | None = None
    plans: np.ndarray | None = None
    label_ns: np.ndarray | None = None
    labels: list[np.ndarray] | None = None
    topics: dict[str, str] = field(default_factory=dict)
    stamp_source: str = "header"
    problems: list[str] = field(default_factory=list)
    partial: bool = False


@dataclass
class Alignment:
    """Segments of aligned frames and what the alignment found (module doc).

    Attributes:
        episodes: one Episode per contiguous segment (frames at the model size).
        segment_frames: per segment, the indices into RecordedStreams.frames.
        report: JSON-ready figures: frames, period_s, jitter_s, dropped, gaps, clock_jumps,
            unmatched_frames, segments, actions, labels.
    """

    episodes: list[Episode]
    segment_frames: list[np.ndarray]
    report: dict


def _nearest(stamps: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Index of the element of sorted `stamps` nearest to each of `at`."""
    right = np.clip(np.searchsorted(stamps, at), 0, len(stamps) - 1)
    left = np.clip(right - 1, 0, len(stamps) - 1)
    return np.where(np.abs(stamps[left] - at) <= np.abs(stamps[right] - at), left, right)


def _latest_at_or_before(stamps: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Index of the last of sorted `stamps` <= each of `at` (0 where none is)."""
    return np.clip(np.searchsorted(stamps, at, side="right") - 1, 0, None)


def frame_breaks(frame_ns: np.ndarray) -> tuple[float, list[dict], list[dict], np.ndarray]:
    """Period, gaps, clock jumps and where the frame sequence must be cut.

    Args:
        frame_ns: (F,) frame stamps in recording order, ns.
    Returns:
        period_s (median positive spacing), gaps [{"index", "at_s", "gap_s", "dropped"}],
        jumps [{"index", "at_s", "step_s"}], cut (F,) bool: True where a new segment starts
        (index i: between frames i-1 and i). Times are relative to the first frame.
    """
    t = (frame_ns - frame_ns[0]) * 1e-9 if len(frame_ns) else np.zeros(0)
    steps = np.diff(t)  # (F-1,)
    positive = steps[steps > 0]
    period = float(np.median(positive)) if len(positive) else 0.0
    cut = np.zeros(len(t), bool)
    gaps, jumps = [], []
    for i, step in enumerate(steps, start=1):
        if step <= 0 or (period > 0 and step > JUMP_FACTOR * period):
            jumps.append({"index": i, "at_s": float(t[i - 1]), "step_s": float(step)})
            cut[i] = True
        elif period > 0 and step > DROP_FACTOR * period:
            missing = max(1, round(step / period) - 1)
            gaps.append({"index": i, "at_s": float(t[i - 1]), "gap_s": float(step),
                         "dropped": missing})  # fmt: skip
            cut[i] = True
    return period, gaps, jumps, cut


def align_streams(
    streams: RecordedStreams,
    image_size: int,
    *,
    actions: str = "auto",
    max_joint_gap_s: float | None = None,
) -> Alignment:
    """Cut the recording into aligned segments (module doc) at the model's image size.

    Raises:
        ReplayDataError: no frames or joint states, plans asked for but absent, or an unknown
            action source.
    """
    from wm_ros.planning.session import to_model_size

    if actions not in ACTION_SOURCES:
        raise ReplayDataError(f"actions must be one of {ACTION_SOURCES}, got {actions!r}")
    if not streams.frames:
        raise ReplayDataError(f"{streams.bag}: no camera frames could be read")
    if len(streams.joint_ns) == 0:
        raise ReplayDataError(f"{streams.bag}: no joint states could be read")
    if actions == "auto":
        actions = "plan" if streams.plans is not None and len(streams.plans) else "joints"
    if actions == "plan" and (streams.plans is None or not len(streams.plans)):
        raise ReplayDataError(f"{streams.bag}: --actions plan, but the bag has no plans")
    frame_ns = np.asarray(streams.frame_ns, np.int64)
    period, gaps, jumps, cut = frame_breaks(frame_ns)
    tol_ns = (max_joint_gap_s if max_joint_gap_s is not None else 0.5 * period) * 1e9
    order = np.argsort(streams.joint_ns, kind="stable")
    joint_ns, joints = streams.joint_ns[order], streams.joints[order]
    nearest = _nearest(joint_ns, frame_ns)  # (F,)
    matched = np.abs(joint_ns[nearest] - frame_ns) <= tol_ns  # (F,)
    q = joints[nearest]  # (F, J)

    label_at = None
    labels_note = "no segmentation topic: image metrics (PSNR, SSIM) only"
    if streams.labels is not None and streams.label_ns is not None and len(streams.labels):
        label_order = np.argsort(streams.label_ns, kind="stable")
        label_ns = streams.label_ns[label_order]
        idx = _nearest(label_ns, frame_ns)
        ok = np.abs(label_ns[idx] - frame_ns) <= max(tol_ns, 1)
        label_at = np.where(ok, label_order[idx], -1)  # (F,) index into labels, -1: none
        labels_note = "segmentation labels from the bag: arm IoU and puck error reported"

    # Segments: runs of matched frames between cuts.
    segments: list[np.ndarray] = []
    current: list[int] = []
    for i in range(len(frame_ns)):
        if cut[i] or not matched[i]:
            if current:
                segments.append(np.array(current))
            current = []
        if matched[i]:
            current.append(i)
    if current:
        segments.append(np.array(current))

    if actions == "plan":
        plan_order = np.argsort(streams.plan_ns, kind="stable")
        plan_ns, plans = streams.plan_ns[plan_order], streams.plans[plan_order]
        a_all = plans[_latest_at_or_before(plan_ns, frame_ns)]  # (F, J)
    episodes = []
    unsized_labels = False
    for s, idx in enumerate(segments):
        frames = np.stack([to_model_size(streams.frames[i], image_size) for i in idx])
        # plan: the target in force; joints: the next frame's measured joints (last row holds)
        a = a_all[idx] if actions == "plan" else np.concatenate([q[idx[1:]], q[idx[-1:]]])
        seg_labels = None
        if label_at is not None and np.all(label_at[idx] >= 0):
            seg_labels = np.stack([streams.labels[j] for j in label_at[idx]])
            if seg_labels.shape[1:] != (image_size, image_size):
                seg_labels, unsized_labels = None, True
        episodes.append(
            Episode(
                frames=frames,
                joints=q[idx].astype(np.float32),
                actions=np.asarray(a, np.float32),
                labels=seg_labels,
                joint_names=tuple(streams.joint_names),
                seed=s,  # the segment's number (shown in the frame strips)
            )
        )
    if unsized_labels:
        labels_note = "segmentation labels are not at the model's image size: image metrics only"
    elif label_at is not None and any(ep.labels is None for ep in episodes):
        labels_note = "segmentation labels missing for some frames: image metrics only"
    t0 = frame_ns[0]
    report = {
        "frames": len(frame_ns),
        "period_s": period,
        "rate_hz": 1.0 / period if period > 0 else None,
        "jitter_s": _jitter(frame_ns, cut, period),
        "dropped": int(sum(g["dropped"] for g in gaps)),
        "gaps": gaps,
        "clock_jumps": jumps,
        "unmatched_frames": int((~matched).sum()),
        "max_joint_gap_s": tol_ns * 1e-9,
        "segments": [
            {"first_s": float((frame_ns[i[0]] - t0) * 1e-9), "frames": len(i)} for i in segments
        ],
        "actions": actions,
        "labels": labels_note,
    }
    return Alignment(episodes, segments, report)


def _jitter(frame_ns: np.ndarray, cut: np.ndarray, period: float) -> float | None:
    """Std of the frame spacing within segments, s."""
    steps = np.diff(frame_ns) * 1e-9
    within = steps[~cut[1:]] if len(steps) else steps
    return float(np.std(within)) if len(within) > 1 and period > 0 else None


# ------------------------------------------------------------------------ closed loop


def interpolate_joints(joint_ns: np.ndarray, joints: np.ndarray, at_ns: np.ndarray) -> np.ndarray:
    """Joint positions (len(at), J) at stamps `at_ns`, linear between recorded states (sorted
    by stamp); NaN outside the recorded span."""
    order = np.argsort(joint_ns, kind="stable")
    t, q = joint_ns[order].astype(np.float64), joints[order]
    out = np.stack([np.interp(at_ns.astype(np.float64), t, q[:, j]) for j in range(q.shape[1])], 1)
    out[(at_ns < t[0]) | (at_ns > t[-1])] = np.nan
    return out


def compare_plans(
    plans: list[tuple[int, np.ndarray, tuple[str, ...], np.ndarray]],
    joint_ns: np.ndarray,
    joints: np.ndarray,
    joint_names: tuple[str, ...],
    steps: int = 4,
) -> dict:
    """Each plan's first `steps` targets against the joints the robot recorded at those times.

    Args:
        plans: (stamp_ns, times_s (T,), joint_names, positions (T, J')) per published plan;
            stamp = the image it was planned from.
        joint_ns, joints, joint_names: the recorded joint states, (Q,), (Q, J).
        steps: plan points compared (fewer when a plan is shorter).
    Returns:
        "plans" (compared), "steps", "plan_error_rad" and "hold_error_rad" (per step: mean over
        plans and joints of |target - actual| and |q(stamp) - actual|), "outside" (plans whose
        steps fall outside the recorded joints, not compared).
    """
    errs = [[] for _ in range(steps)]
    holds = [[] for _ in range(steps)]
    outside = 0
    for stamp, times, names, pos in plans:
        cols = [joint_names.index(n) for n in names if n in joint_names]
        rows = [i for i, n in enumerate(names) if n in joint_names]
        k = min(steps, len(times))
        at = stamp + np.round(np.asarray(times[:k]) * 1e9).astype(np.int64)
        actual = interpolate_joints(joint_ns, joints, np.concatenate([[stamp], at]))[:, cols]
        if np.isnan(actual).any():
            outside += 1
            continue
        for i in range(k):
            errs[i].append(float(np.abs(pos[i, rows] - actual[i + 1]).mean()))
            holds[i].append(float(np.abs(actual[0] - actual[i + 1]).mean()))

    def mean(v: list[float]) -> float | None:
        return float(np.mean(v)) if v else None

    return {
        "plans": len(plans) - outside,
        "outside": outside,
        "steps": steps,
        "plan_error_rad": [mean(v) for v in errs],
        "hold_error_rad": [mean(v) for v in holds],
    }


# ------------------------------------------------------------------------ command


def evaluate_replay(
    model,
    streams: RecordedStreams,
    *,
    steps: int = 2,
    noise_scale: float = 1.0,
    seed: int = 0,
    stride: int | None = None,
    windows_per_episode: int | None = None,
    actions: str = "auto",
    max_joint_gap_s: float | None = None,
    examples: list | None = None,
    max_examples: int = 6,
    progress: bool = True,
    name: str = "model",
    baselines: tuple[str, ...] = ("copy_last",),
) -> dict:
    """Prediction metrics of `model` on a recorded bag (module doc).

    Args:
        model: the world model.
        streams: what `read_streams` read.
        steps: flow sampler steps per chunk.
        noise_scale: factor on the sampler's noise (flow.sample; 0: deterministic predictions).
        seed: seeds the window choice and the sampling noise.
        stride: windows every `stride` frames (default: 2H, the predicted length, so every
            frame is predicted once); ignored when `windows_per_episode` is given (then:
            random windows, as `eval predict` draws them).
        actions, max_joint_gap_s: see `align_streams`.
        examples: receives the `max_examples` worst windows (lowest mean PSNR) for the report.
        baselines: as `evaluate_prediction` (copy_last only by default: base_only and the
            autoencoder ceiling triple the decoding work on a long bag).
    Returns:
        `evaluate_prediction`'s dict plus "bag", "dropped", "alignment", "partial", "problems",
        "topics", "image_metrics_only", "frames", "frames_per_s".
    Raises:
        ReplayDataError: nothing to evaluate (no segment long enough, no frames, ...).
    """
    from wm_ros.eval.predict import PredictionDataError, evaluate_prediction

    t0 = time.perf_counter()
    alignment = align_streams(
        streams, model.cfg.image_size, actions=actions, max_joint_gap_s=max_joint_gap_s
    )
    span = model.cfg.context + 2 * model.cfg.horizon
    kept = [i for i, ep in enumerate(alignment.episodes) if len(ep) >= span]  # segment numbers
    usable = [alignment.episodes[i] for i in kept]
    if not usable:
        longest = max((len(ep) for ep in alignment.episodes), default=0)
        raise ReplayDataError(
            f"{streams.bag}: no stretch of {span} consecutive aligned frames (context + 2H) to "
            f"evaluate; the longest has {longest} (dropped frames {alignment.report['dropped']}, "
            f"clock jumps {len(alignment.report['clock_jumps'])}, unmatched frames "
            f"{alignment.report['unmatched_frames']})"
        )
    random_windows = windows_per_episode is not None
    try:
        result = evaluate_prediction(
            model,
            usable,
            steps=steps,
            noise_scale=noise_scale,
            seed=seed,
            windows_per_episode=windows_per_episode or 1,
            stride=None if random_windows else (stride or 2 * model.cfg.horizon),
            baselines=baselines,
            name=name,
            examples=examples,
            max_examples=max_examples,
            worst_examples=True,
            per_window=True,
            progress=progress,
        )
    except PredictionDataError as err:
        raise ReplayDataError(f"{streams.bag}: {err}") from None
    wall = time.perf_counter() - t0
    labelled = all(ep.labels is not None for ep in usable)
    result.update(
        bag=streams.bag,
        storage=streams.storage,
        dropped=alignment.report["dropped"],
        alignment=alignment.report,
        partial=streams.partial,
        problems=list(streams.problems),
        topics=dict(streams.topics),
        image_metrics_only=not labelled,
        frames=len(streams.frames),
        stamp_source=streams.stamp_source,
        segments_evaluated=len(usable),
        wall_s=wall,
        frames_per_s=len(streams.frames) / wall if wall > 0 else None,
    )
    # Windows by time in the recording, for the report's worst-windows table.
    for w in result["per_window"]:
        seg = alignment.segment_frames[kept[w["episode"]]]
        w["episode"] = kept[w["episode"]]  # the segment's number, as in the frame strips
        w["frame"] = int(seg[w["start"]])
        w["t_s"] = float((streams.frame_ns[seg[w["start"]]] - streams.frame_ns[0]) * 1e-9)
    return result


def _cmd_replay(args: argparse.Namespace) -> int:
    from wm_ros.eval.report_html import write_replay_report
    from wm_ros.ros.replay import ReplayBagError, read_plan_bag, read_streams

    if args.model is None and args.plans is None:
        log.error("wm-ros eval replay: give --model (prediction) and/or --plans (closed loop)")
        return 2
    t0 = time.perf_counter()
    try:
        streams = read_streams(
            args.bag,
            image_topic=args.image_topic,
            joints_topic=args.joints_topic,
            plan_topic=args.plan_topic,
            segmentation_topic=args.segmentation_topic,
            progress=not args.no_progress,
        )
    except ReplayBagError as err:
        log.error("wm-ros eval replay: %s", err)
        return 2
    for problem in streams.problems:
        log.warning("%s", problem)
    result: dict = {"bag": str(args.bag), "windows": 0, "metrics": None, "dropped": None}
    examples: list = []
    if args.model is not None:
        from wm_ros.model import CheckpointError, load_model
        from wm_ros.train import resolve_device

        try:
            model = load_model(args.model, resolve_device(args.device))
            result = evaluate_replay(
                model,
                streams,
                steps=args.steps,
                noise_scale=args.noise_scale,
                seed=args.seed,
                stride=args.stride,
                windows_per_episode=args.windows_per_episode,
                actions=args.actions,
                max_joint_gap_s=args.max_joint_gap,
                examples=examples,
                max_examples=args.strip_windows,
                progress=not args.no_progress,
                name=str(args.model),
                baselines=tuple(args.baselines),
            )
        except (CheckpointError, ReplayDataError) as err:
            log.error("wm-ros eval replay: %s", err)
            return 2
    else:
        try:
            alignment = align_streams(streams, 64, actions="joints")
        except ReplayDataError as err:
            log.error("wm-ros eval replay: %s", err)
            return 2
        result.update(dropped=alignment.report["dropped"], alignment=alignment.report,
                      partial=streams.partial, problems=list(streams.problems))  # fmt: skip
    if args.plans is not None:
        try:
            closed = read_plan_bag(args.plans)
        except ReplayBagError as err:
            log.error("wm-ros eval replay: %s", err)
            return 2
        comparison = compare_plans(
            closed["plans"], streams.joint_ns, streams.joints, streams.joint_names,
            steps=args.plan_steps,
        )  # fmt: skip
        comparison.update(
            recorded=str(args.plans),
            latency_ms=closed["latency_ms"],
            counts=closed["counts"],
            notes=closed["notes"],
        )
        result["closed_loop"] = comparison
    result["seed"] = args.seed
    html = args.html or args.json.with_suffix(".html")
    write_replay_report(result, examples, html)
    result["total_wall_s"] = time.perf_counter() - t0
    result["report"] = str(html)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    mark = " (PARTIAL: " + "; ".join(streams.problems) + ")" if streams.partial else ""
    log.info(
        "%s: %d frames, %d windows, %s dropped, %.1f s%s -> %s, %s",
        args.bag,
        len(streams.frames),
        result.get("windows", 0),
        result.get("dropped"),
        result["total_wall_s"],
        mark,
        args.json,
        html,
    )
    return 0


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `wm-ros eval replay` (the handler is set as `func`)."""
    from wm_ros.eval.predict import BASELINES, DEFAULT_HELDOUT_SEED, add_sampler_arguments

    parser.add_argument("bag", type=Path, help="rosbag2 bag (directory, .mcap or .db3)")
    parser.add_argument("--model", help="model directory: score its predictions on the bag")
    parser.add_argument("--json", type=Path, required=True, help="write the figures here")
    parser.add_argument("--html", type=Path, help="HTML report (default: --json with .html)")
    parser.add_argument(
        "--image-topic",
        help="camera topic (default /camera/image_raw, or the "
        "bag's only Image/CompressedImage topic)",
    )
    parser.add_argument("--joints-topic", default="/joint_states")
    parser.add_argument("--plan-topic", default="/wm/plan", help="commanded targets, if any")
    parser.add_argument("--segmentation-topic", default="/sim/segmentation")
    parser.add_argument(
        "--actions",
        choices=ACTION_SOURCES,
        default="auto",
        help="condition on commanded plans or on the next measured joints",
    )
    parser.add_argument(
        "--max-joint-gap",
        type=float,
        metavar="S",
        help="joint state to frame tolerance, s (default: half a frame period)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_HELDOUT_SEED,
        help="seeds the windows and the sampling noise",
    )
    add_sampler_arguments(parser)
    parser.add_argument("--stride", type=int, help="a window every S frames (default: 2H)")
    parser.add_argument(
        "--baselines",
        nargs="+",
        choices=BASELINES,
        default=["copy_last"],
        help="baselines beside the model (base_only and autoencoder cost 2 more decodes)",
    )
    parser.add_argument(
        "--windows-per-episode",
        type=int,
        help="random windows per segment instead, as eval predict draws them",
    )
    parser.add_argument("--strip-windows", type=int, default=6, help="worst windows drawn")
    parser.add_argument(
        "--plans", type=Path, help="bag recorded by `wm-ros bringup replay`: compare its plans"
    )
    parser.add_argument("--plan-steps", type=int, default=4, help="plan points compared")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.set_defaults(func=_cmd_replay)

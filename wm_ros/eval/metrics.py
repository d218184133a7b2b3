"""Frame metrics for open-loop prediction: PSNR, SSIM, and arm / puck masks of RGB frames.

Images are float tensors (..., 3, S, S) in [0, 1]; every function is batched over the leading
axes and returns one value per frame. Pretrained perceptual metrics (LPIPS, FVD) need weights
that cannot be downloaded here, so the semantic metrics come from the simulator's segmentation
instead: a nearest-prototype colour classifier, fit on real (frame, label) pairs, turns any
RGB frame (a prediction included) into an arm mask and a puck mask.
"""

from __future__ import annotations

import numpy as np
import torch

from wm_ros.centroids import blob_centroid, mask_centroid
from wm_ros.sim.scene import ARM_LABEL_START, BACKGROUND_LABEL, PUCK_LABEL

# Identical frames have MSE 0 and infinite PSNR; flooring the MSE caps PSNR at 100 dB so that
# means over windows stay finite (and JSON stays standard).
MSE_FLOOR = 1e-10
# Pixels per fit frame used to estimate the class means (the means converge long before).
_FIT_PIXELS = 200_000


def psnr(pred: torch.Tensor, target: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per frame, dB: (..., C, S, S) x 2 -> (...,).

    10 log10(max_val^2 / MSE), the MSE floored at MSE_FLOOR (module note).
    """
    mse = (pred.float() - target.float()).pow(2).mean(dim=(-3, -2, -1))
    return 10.0 * torch.log10(max_val**2 / mse.clamp_min(MSE_FLOOR))


def _gaussian_band(n: int, size: int, sigma: float, device, dtype) -> torch.Tensor:
    """(n - size + 1, n) matrix whose rows are a normalised 1D Gaussian of `size` taps shifted
    by one pixel each: a valid-mode Gaussian filter along one axis as a matrix product (much
    faster on CPU than a depthwise convolution)."""
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    out = n - size + 1
    band = torch.zeros(out, n, device=device, dtype=dtype)
    rows = torch.arange(out, device=device)[:, None]
    band[rows, rows + torch.arange(size, device=device)[None]] = g
    return band


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    window: int = 11,
    sigma: float = 1.5,
    max_val: float = 1.0,
) -> torch.Tensor:
    """Structural similarity per frame (Wang et al. 2004): (..., C, S, S) x 2 -> (...,).

    Gaussian-weighted local statistics (separable `window` x `window` kernel, std `sigma`,
    valid positions only, no padding), K1 = 0.01, K2 = 0.03, averaged over channels and
    positions. 1 for identical frames.

    Raises:
        ValueError: frames smaller than the window, or shapes that differ.
    """
    if pred.shape != target.shape:
        raise ValueError(f"ssim needs equal shapes, got {tuple(pred.shape)} {tuple(target.shape)}")
    c, h, w = pred.shape[-3:]
    if min(h, w) < window:
        raise ValueError(f"frames of {h}x{w} are smaller than the SSIM window {window}")
    lead = pred.shape[:-3]
    x = pred.float().reshape(-1, c, h, w)
    y = target.float().reshape(-1, c, h, w)
    gh = _gaussian_band(h, window, sigma, x.device, x.dtype)  # (h', h)
    gw = _gaussian_band(w, window, sigma, x.device, x.dtype)  # (w', w)
    # One separable blur for the five local moments: (5 B, C, h', w').
    moments = gh @ torch.cat([x, y, x * x, y * y, x * y]) @ gw.T
    mu_x, mu_y, e_xx, e_yy, e_xy = moments.chunk(5)
    var_x, var_y = e_xx - mu_x**2, e_yy - mu_y**2
    cov = e_xy - mu_x * mu_y
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return s.mean(dim=(-3, -2, -1)).view(lead)


def kmeans(points: torch.Tensor, k: int, *, iters: int = 20, seed: int = 0) -> torch.Tensor:
    """k-means++ seeded Lloyd iterations: points (P, D) -> (min(k, P), D) centres."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    k = min(k, len(points))
    centres = points[torch.randint(len(points), (1,), generator=g)]
    while len(centres) < k:  # k-means++: next centre with probability ~ squared distance
        d2 = torch.cdist(points, centres).min(dim=1).values.pow(2)
        if float(d2.sum()) == 0:
            break  # fewer distinct colours than k
        pick = torch.multinomial((d2 / d2.sum()).cpu(), 1, generator=g).to(points.device)
        centres = torch.cat([centres, points[pick]])
    for _ in range(iters):
        assign = torch.cdist(points, centres).argmin(dim=1)  # (P,)
        sums = torch.zeros_like(centres).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=len(centres)).to(points.dtype)[:, None]
        # An emptied cluster keeps its old centre.
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
    return centres


class ColourSegmenter:
    """Nearest-prototype RGB classifier: pixels -> background / puck / arm.

    Each simulator label (background, puck and every arm link: the links have distinct
    colours, so one "arm" mean would sit between them and fit none) gets `prototypes` mean
    colours, found by k-means over that label's pixels in real frames (shading makes one mean
    per label too coarse: the table's highlights come out as puck). A pixel takes the label of
    the nearest prototype, then arm links collapse into one arm class. A prediction's masks
    therefore mean "pixels the colour of the arm / puck", which a blurry prediction can be
    judged on without a learned segmenter. `fit(..., prototypes=1)` is the plain
    nearest-class-mean classifier.
    """

    ARM, PUCK, BACKGROUND = 2, 1, 0  # coarse classes returned by `classify`

    def __init__(self, means: torch.Tensor, labels: torch.Tensor) -> None:
        """means (L, 3) prototype colours in [0, 1]; labels (L,) the simulator label of each."""
        self.means, self.labels = means.float(), labels.long()
        coarse = torch.full_like(self.labels, self.BACKGROUND)
        coarse[self.labels == PUCK_LABEL] = self.PUCK
        coarse[self.labels >= ARM_LABEL_START] = self.ARM
        self._coarse = coarse

    @classmethod
    def fit(
        cls,
        frames: np.ndarray,
        labels: np.ndarray,
        *,
        prototypes: int = 4,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> ColourSegmenter:
        """Prototypes from (N, S, S, 3) uint8 frames and their (N, S, S) labels.

        A seeded random subset of pixels keeps the fit cheap on long episodes.

        Raises:
            ValueError: mismatched shapes, or no background, puck or arm pixels to learn from.
        """
        frames, labels = np.asarray(frames), np.asarray(labels)
        if frames.shape[:-1] != labels.shape or frames.shape[-1] != 3:
            raise ValueError(f"frames {frames.shape} and labels {labels.shape} do not match")
        if prototypes < 1:
            raise ValueError(f"prototypes must be >= 1, got {prototypes}")
        rgb, lab = frames.reshape(-1, 3), labels.reshape(-1)
        if len(lab) > _FIT_PIXELS:
            pick = np.random.default_rng(seed).choice(len(lab), _FIT_PIXELS, replace=False)
            rgb, lab = rgb[pick], lab[pick]
        present = np.unique(lab)
        if (
            BACKGROUND_LABEL not in present
            or PUCK_LABEL not in present
            or not np.any(present >= ARM_LABEL_START)
        ):
            raise ValueError(
                f"the fit frames show labels {present.tolist()}: need background "
                f"({BACKGROUND_LABEL}), the puck ({PUCK_LABEL}) and an arm link "
                f"(>= {ARM_LABEL_START})"
            )
        rgb_t = torch.as_tensor(rgb, dtype=torch.float32) / 255.0  # (P, 3)
        lab_t = torch.as_tensor(lab.astype(np.int64))  # (P,)
        means, owners = [], []
        for label in present.tolist():  # a handful of labels, not pixels
            c = kmeans(rgb_t[lab_t == label], prototypes, seed=seed + label)
            means.append(c)
            owners += [label] * len(c)
        return cls(torch.cat(means).to(device), torch.as_tensor(owners, device=device))

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """(..., 3, S, S) float images in [0, 1] -> (..., S, S) coarse classes (ARM, PUCK,
        BACKGROUND)."""
        px = images.float().movedim(-3, -1)  # (..., S, S, 3)
        means = self.means.to(px.device)
        # |x - m|^2 minus the per-pixel constant |x|^2: (..., S, S, L) without a (..., L, 3)
        # difference tensor.
        d = means.pow(2).sum(-1) - 2.0 * px @ means.T
        return self._coarse.to(px.device)[d.argmin(-1)]

    def masks(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(arm, puck) bool masks (..., S, S) of float images (..., 3, S, S)."""
        cls = self.classify(images)
        return cls == self.ARM, cls == self.PUCK


def label_masks(labels: np.ndarray | torch.Tensor, device=None) -> tuple[torch.Tensor, ...]:
    """(arm, puck) bool masks (..., S, S) from simulator labels (..., S, S)."""
    lab = torch.as_tensor(np.asarray(labels), device=device)
    return lab >= ARM_LABEL_START, lab == PUCK_LABEL


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Intersection over union per frame of bool masks (..., S, S) -> (...,).

    Both masks empty counts as perfect agreement (1.0), so the value is always defined.
    """
    inter = (pred & target).sum(dim=(-2, -1)).float()
    union = (pred | target).sum(dim=(-2, -1)).float()
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.ones_like(union))


def centroid_error(
    pred_mask: torch.Tensor, true_mask: torch.Tensor, radius: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distance between the centroids of two bool masks (..., S, S), pixels.

    radius: when given, the predicted centroid is that of its densest blob (`blob_centroid`);
        the true mask is used whole (it is exact).
    Returns:
        error (...,): NaN where either mask is empty.
        pred_present, true_present (...,) bool: which masks were non-empty (an empty
            predicted mask where the truth has one is a "missing" puck, to be reported).
    """
    cp, pp = mask_centroid(pred_mask) if radius is None else blob_centroid(pred_mask, radius)
    ct, tp = mask_centroid(true_mask)
    return (cp - ct).norm(dim=-1), pp, tp


def nan_mean(values: torch.Tensor | np.ndarray, dim: int = 0) -> list[float | None]:
    """Mean over `dim` ignoring NaN, as JSON-ready floats (None where every value is NaN)."""
    v = np.asarray(torch.as_tensor(values).cpu(), dtype=np.float64)
    finite = ~np.isnan(v)
    n = finite.sum(axis=dim)
    s = np.where(finite, v, 0.0).sum(axis=dim)
    pairs = zip(np.atleast_1d(s), np.atleast_1d(n), strict=True)
    return [float(x / k) if k > 0 else None for x, k in pairs]


def bootstrap_ci(
    values: torch.Tensor | np.ndarray, *, level: float = 0.95, draws: int = 2000, seed: int = 0
) -> list[float] | None:
    """Percentile bootstrap interval [lo, hi] of the mean of `values` (NaN ignored), resampling
    the values with replacement (seeded); None with fewer than two finite values.

    The values must be independent units (one per window): how far a figure could move on
    another held-out set of the same size.
    """
    v = np.asarray(torch.as_tensor(values).cpu(), dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(draws, v.size))].mean(axis=1)
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    return [float(lo), float(hi)]

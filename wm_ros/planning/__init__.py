"""Planning: the learned action prior (and, with the planner, CEM, costs, parameterisations)."""

from wm_ros.planning.prior import ActionPrior, gaussian_nll, has_prior, load_prior, save_prior

__all__ = ["ActionPrior", "gaussian_nll", "has_prior", "load_prior", "save_prior"]

"""Evaluation: metrics, closed-loop runs and the images and reports people look at."""

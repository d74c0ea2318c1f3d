# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Eigen-axes explorer
#
# Pick a model, an eye colour and a seed; the app computes the metric at that code (a few seconds). Then move the
# eigen-rank and the step: the strip shows the walk along that eigenvector, the curve the distance to the middle
# image. Pick a region to walk its local directions instead: those that change the region most per change outside
# it. Served by `make explore` (Voilà); chapter 04 opens the same app.
#
# Switch the view to **geodesic** and pick a second seed: the app joins the two codes by the geodesic (the
# shortest path under the distance, chapter 09) and by the straight line, in the chosen number of steps (seconds
# on a 64-px model), and shows both image strips, their perceptual speed along the path and their lengths.

# %%
from helpers.explore import explore

explore()

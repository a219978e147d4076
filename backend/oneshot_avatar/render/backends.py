"""The rasterizer backends a user can name (``--backend``), without importing any of them."""

BACKENDS: tuple[str, ...] = ("auto", "gsplat", "cpu", "torch")

"""The gsplat (CUDA) implementation of ``rasterize_gaussians``.

``gsplat`` is imported inside the function, so importing ``oneshot_avatar`` never loads it or
its CUDA extension (gsplat 1.5.3 from PyPI is a pure-Python wheel that JIT-compiles its kernels
on the first call; that needs nvcc and took 60 s on a 16-core H200 machine, then is cached in
``~/.cache/torch_extensions``). Loading the cached kernels goes through torch's JIT too, which
wants the ``ninja`` program on ``PATH`` every time: :func:`ninja_on_path` puts the ``ninja``
package's own folder there when a backend runs without its environment activated.

Argument mapping onto ``gsplat.rasterization`` (1.5.3, ``gsplat/rendering.py``):

* batch dims: gsplat takes leading batch dims ``[..., N, 3]`` and ``[..., C, 4, 4]`` and
  returns ``[..., C, H, W, X]``; our ``[B, N, ...]`` / ``[B, C, ...]`` are passed as they are;
* ``render_mode="RGB+ED"``: the last channel is ``Σ w_i z_i / max(alpha, 1e-10)``, the
  background is extended with a zero depth channel by gsplat itself;
* ``packed=False``: avatars are seen almost whole by every camera, so packing saves little and
  the dense layout is the faster one;
* quaternions are passed unnormalised: gsplat normalises them in its kernels (and its backward
  projects the gradient onto the tangent space, as autograd through a normalisation does);
* ``eps2d=0.3``, ``rasterize_mode="classic"``, ``camera_model="pinhole"``, ``tile_size=16``,
  ``radius_clip=0`` — gsplat's defaults, spelled out because the PyTorch twin hard-codes them;
* SH: ``sh_degree`` and ``[B, N, K, 3]`` coefficients go straight through (gsplat evaluates
  them towards ``inverse(viewmat)[:3, 3]`` and applies ``max(sh + 0.5, 0)``).
"""

from __future__ import annotations

import functools
import os
import shutil
from typing import TYPE_CHECKING

from torch import Tensor

from oneshot_avatar.render.torch_rasterizer import EPS2D, GSPLAT_TILE_SIZE

if TYPE_CHECKING:
    from oneshot_avatar.render.rasterize import RasterInputs


@functools.cache  # once per process: not a PATH search per rendered batch
def ninja_on_path() -> None:
    """Make ``ninja`` findable on ``PATH`` when the ``ninja`` package (a gsplat dependency) is
    installed but its folder is not on ``PATH``, as in a backend that Blender's *Start a Local
    Backend*, a service manager or ``subprocess`` with a plain ``PATH`` starts from a virtual
    environment it never activated. Without it every CUDA render fails with torch's "Ninja is
    required to load C++ extensions", also after gsplat's kernels are built."""
    if shutil.which("ninja"):
        return
    try:
        import ninja
    except ImportError:
        return  # torch then names what is missing
    folder = getattr(ninja, "BIN_DIR", None)
    if folder and any(os.path.isfile(os.path.join(folder, name)) for name in ("ninja", "ninja.exe")):
        os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")


def rasterize_gaussians_gsplat(
    inputs: RasterInputs,
) -> tuple[Tensor, Tensor, Tensor]:  # rgb [B, C, H, W, 3], alpha [B, C, H, W, 1], depth same
    """Render with ``gsplat.rasterization``; ``inputs`` are assumed checked by the caller
    (``oneshot_avatar.render.rasterize_gaussians``) and on CUDA, float32."""
    ninja_on_path()
    from gsplat import rasterization

    render, alpha, _meta = rasterization(
        inputs.means,
        inputs.quats,
        inputs.scales,
        inputs.opacities,
        inputs.colors,
        inputs.viewmats,
        inputs.Ks,
        inputs.width,
        inputs.height,
        near_plane=inputs.near,
        far_plane=inputs.far,
        radius_clip=0.0,
        eps2d=EPS2D,
        sh_degree=inputs.sh_degree,
        packed=False,
        tile_size=GSPLAT_TILE_SIZE,
        backgrounds=inputs.backgrounds,
        render_mode="RGB+ED",
        rasterize_mode="classic",
        camera_model="pinhole",
    )
    return render[..., :3], alpha, render[..., 3:4]

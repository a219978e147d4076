"""Two folders of rendered PNG frames (RGBA) compared frame by frame: PSNR of the premultiplied
colour and of alpha, the largest difference, the coverage.

    python benchmarks/compare_frames.py A_DIR B_DIR OUT_DIR

Writes OUT_DIR/side.png (the first frames side by side) and OUT_DIR/gsplat_frames.npz (A's
frames, to compare with a render made elsewhere).
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

a_dir, b_dir, out = map(Path, sys.argv[1:4])
frames_a = sorted(a_dir.glob("*.png"))
frames_b = sorted(b_dir.glob("*.png"))
print(len(frames_a), "and", len(frames_b), "frames")
stack = []
for fa, fb in zip(frames_a, frames_b):
    a = np.asarray(Image.open(fa).convert("RGBA"), dtype=np.float64) / 255
    b = np.asarray(Image.open(fb).convert("RGBA"), dtype=np.float64) / 255
    pa, pb = a[..., :3] * a[..., 3:], b[..., :3] * b[..., 3:]
    mse = np.mean((pa - pb) ** 2)
    amse = np.mean((a[..., 3] - b[..., 3]) ** 2)
    psnr = lambda m: 10 * np.log10(1 / max(m, 1e-20))
    print(f"{fa.name}: colour PSNR {psnr(mse):.2f} dB, alpha PSNR {psnr(amse):.2f} dB, "
          f"max abs {np.abs(pa - pb).max():.4f}, coverage {a[..., 3].mean():.4f}")
    stack.append(np.asarray(Image.open(fa).convert("RGBA")))
np.savez_compressed(out / "gsplat_frames.npz", frames=np.stack(stack))
side = np.concatenate([np.asarray(Image.open(frames_a[0]).convert("RGBA")),
                       np.asarray(Image.open(frames_b[0]).convert("RGBA"))], axis=1)
Image.fromarray(side).save(out / "side.png")

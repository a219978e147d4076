"""Photo -> avatar: the reconstruction pipeline, its presets, the synthetic demo subject and
fidelity evaluation."""

"""The views the fidelity benchmarks compare (reconstruct.evaluate.evaluation_views): each pair
frames the truth and the avatar alike, so a figure measures the avatar, not the framing."""

from __future__ import annotations

import math

import torch

from oneshot_avatar.reconstruct.evaluate import evaluation_views, orbit_view, render_truth
from oneshot_avatar.reconstruct.synthetic import make_subject


def test_the_back_view_circles_to_the_far_side_at_the_photo_distance(open_body):
    subject = make_subject(open_body, "green-plain", size=96)
    params = dict(subject.params)
    with torch.no_grad():
        vertices = open_body(**params).vertices[0]
    centre = (vertices.min(0).values + vertices.max(0).values) / 2
    back = orbit_view(subject.camera, open_body, params, 180.0, (96, 96))
    front_offset = subject.camera.position - centre
    back_offset = back.position - centre
    # Same height and distance, on the other side, looking at the body's centre.
    assert math.isclose(float(back_offset[1]), float(front_offset[1]), abs_tol=1e-4)
    assert math.isclose(float(back_offset.norm()), float(front_offset.norm()), rel_tol=1e-4)
    assert float(back_offset[2]) * float(front_offset[2]) < 0
    assert float(torch.dot(back.forward, -back_offset / back_offset.norm())) > 0.9999
    assert (back.fx, back.fy) == (subject.camera.fx, subject.camera.fy)


def test_the_views_pair_truth_and_fit_and_frame_the_person(open_body):
    subject = make_subject(open_body, "green-plain", size=96)
    truth = dict(subject.params)
    truth["expression"] = torch.zeros(1, len(open_body.expression_names))
    views = evaluation_views(open_body, (truth, subject.camera), (truth, subject.camera), (96, 96))
    assert {name: len(pairs) for name, pairs in views.items()} == \
        {"input_view": 1, "held_out_poses": 3, "views_45": 2, "back_view": 1}
    for pairs in views.values():
        for (t_params, t_cam), (f_params, f_cam) in pairs:
            # The same fit on both sides gives the same picture: the pairs are consistent.
            assert torch.allclose(t_cam.world_to_cam, f_cam.world_to_cam)
            assert all(torch.equal(t_params[k], f_params[k]) for k in t_params)
            _, mask = render_truth(open_body, subject.texture, t_params, t_cam)
            assert mask.mean() > 0.05  # the person is in the picture
    # Held-out poses move the body but keep its shape and placement.
    held = views["held_out_poses"][0][0][0]
    assert not torch.equal(held["body_pose"], truth["body_pose"])
    assert torch.equal(held["betas"], truth["betas"]) and torch.equal(held["transl"], truth["transl"])

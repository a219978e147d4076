"""Set Up Avatar Compositing: the avatars over a Cycles/EEVEE render of the set, in one F12.

The operator, run in the scene that renders the set:

- makes (or updates) the scene ``"<scene> Avatars"``: the same collections and camera, the same
  frame range, resolution and frame rate, rendered by the One-Shot Avatar engine with a
  transparent film and a Depth pass;
- turns on the Depth pass of the set's view layer and hides the avatars' splat previews from
  its render (the armatures themselves never render in Cycles/EEVEE; the engine reads them);
- gives the set scene a compositor node group where a Z Combine node (alpha on) puts each
  pixel of the avatars in front of the set or behind it by depth — a set object nearer the
  camera than the avatar hides it.

F12 and Render Animation in the set scene then render both scenes and write the composite.
"""

from __future__ import annotations

import bpy

from .core.smplx_rig import RIG_TAG_PROPERTY
from .render_engine import ENGINE_ID

TREE_NAME = "OneShot Avatar Compositing"
SUFFIX = " Avatars"
COPIED_RENDER_SETTINGS = ("resolution_x", "resolution_y", "resolution_percentage",
                          "pixel_aspect_x", "pixel_aspect_y", "fps", "fps_base")


def avatar_scene_for(scene: bpy.types.Scene) -> bpy.types.Scene:
    """The avatars' scene of ``scene`` (made when missing), kept in step with it."""
    name = scene.name + SUFFIX
    avatars = bpy.data.scenes.get(name) or bpy.data.scenes.new(name)
    for child in scene.collection.children:
        if child.name not in avatars.collection.children:
            avatars.collection.children.link(child)
    for obj in scene.collection.objects:
        if obj.name not in avatars.collection.objects:
            avatars.collection.objects.link(obj)
    avatars.camera = scene.camera
    avatars.frame_start, avatars.frame_end = scene.frame_start, scene.frame_end
    for setting in COPIED_RENDER_SETTINGS:
        setattr(avatars.render, setting, getattr(scene.render, setting))
    avatars.render.engine = ENGINE_ID
    avatars.render.film_transparent = True
    for layer in avatars.view_layers:
        layer.use_pass_z = True
    avatars.view_settings.view_transform = scene.view_settings.view_transform
    return avatars


def compositing_tree(scene: bpy.types.Scene, avatars: bpy.types.Scene):
    """A compositor node group: Z Combine of the set (A) and the avatars (B) by depth."""
    tree = bpy.data.node_groups.get(TREE_NAME + " " + scene.name)
    if tree is None:
        tree = bpy.data.node_groups.new(TREE_NAME + " " + scene.name, "CompositorNodeTree")
    tree.nodes.clear()
    if not any(item.in_out == "OUTPUT" for item in tree.interface.items_tree
               if item.item_type == "SOCKET"):
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    set_layer = tree.nodes.new("CompositorNodeRLayers")
    set_layer.scene = scene
    set_layer.location = (-400, 200)
    avatar_layer = tree.nodes.new("CompositorNodeRLayers")
    avatar_layer.scene = avatars
    avatar_layer.location = (-400, -200)
    combine = tree.nodes.new("CompositorNodeZcombine")
    combine.location = (0, 0)
    combine.inputs["Use Alpha"].default_value = True
    output = tree.nodes.new("NodeGroupOutput")
    output.location = (250, 0)
    tree.links.new(set_layer.outputs["Image"], combine.inputs["A"])
    tree.links.new(set_layer.outputs["Depth"], combine.inputs["Depth A"])
    tree.links.new(avatar_layer.outputs["Image"], combine.inputs["B"])
    tree.links.new(avatar_layer.outputs["Depth"], combine.inputs["Depth B"])
    tree.links.new(combine.outputs["Result"], output.inputs[0])
    return tree


class OBJECT_OT_oneshot_avatar_setup_compositing(bpy.types.Operator):
    """Render the avatars with the One-Shot Avatar engine in a second scene and composite
    them over this scene's Cycles/EEVEE render by depth"""

    bl_idname = "oneshot_avatar.setup_compositing"
    bl_label = "Set Up Avatar Compositing"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012  (Blender reads a set)

    def execute(self, context):
        scene = context.scene
        if scene.render.engine == ENGINE_ID:
            self.report({"ERROR"}, "run Set Up Avatar Compositing in the scene that renders the "
                                   "set (render engine Cycles or EEVEE), not in the avatars' one")
            return {"CANCELLED"}
        if scene.camera is None:
            self.report({"ERROR"}, "the scene has no camera; add one and make it the scene "
                                   "camera")
            return {"CANCELLED"}
        if not hasattr(scene, "compositing_node_group"):
            self.report({"ERROR"}, "this Blender has no compositor node groups; use Blender 5.0 "
                                   "or newer")
            return {"CANCELLED"}
        avatars = avatar_scene_for(scene)
        for layer in scene.view_layers:
            layer.use_pass_z = True
        hidden = 0
        for obj in scene.objects:
            if obj.type == "ARMATURE" and obj.get(RIG_TAG_PROPERTY) is not None:
                for child in obj.children_recursive:
                    if not child.hide_render:
                        child.hide_render = True
                        hidden += 1
        scene.compositing_node_group = compositing_tree(scene, avatars)
        scene.render.use_compositing = True
        self.report({"INFO"}, f"Avatars render in scene {avatars.name!r} and are composited "
                              f"over {scene.name!r} by depth ({hidden} splat preview(s) hidden "
                              "from the set's render)")
        return {"FINISHED"}


CLASSES = (OBJECT_OT_oneshot_avatar_setup_compositing,)

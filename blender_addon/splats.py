"""Showing the Gaussian centres as coloured splats: a Geometry Nodes group that turns the (rig-
deformed) vertices into points with a radius from the ``scale`` attribute, and a material that
reads the ``splat_color`` and ``opacity`` attributes. Shared by every imported avatar (one node group
and one material per .blend, made on first use)."""

from __future__ import annotations

import bpy

NODE_GROUP_NAME = "OneShotAvatar Splats"
MATERIAL_NAME = "OneShotAvatar Splat"
MODIFIER_NAME = "Splats"
SPLAT_SIZE_SOCKET = "Splat Size"
DEFAULT_SPLAT_SIZE = 1.5  # radius = mean Gaussian scale x this
SPLAT_COLOR_ATTRIBUTE = "splat_color"  # scene-linear RGBA per point
MATERIAL_VERSION_KEY = "oneshot_avatar_material_version"
MATERIAL_VERSION = 2  # 1: lit Principled BSDF reading "color"; 2: unlit, "splat_color"
NODE_GROUP_VERSION = 2  # 2: points flagged HIDE_ATTRIBUTE are left out
HIDE_ATTRIBUTE = "splat_hidden"  # BOOLEAN point attribute: drawn by another object


def _new_socket(group: bpy.types.NodeTree, name: str, in_out: str, socket_type: str):
    return group.interface.new_socket(name=name, in_out=in_out, socket_type=socket_type)


def ensure_splat_material() -> bpy.types.Material:
    """The shared splat material, unlit like the backend's renders: Emission (strength 1) of the
    ``splat_color`` attribute (scene-linear), mixed with Transparent by ``opacity``. A lit
    Principled BSDF looked washed out in EEVEE and the attribute name ``color`` read as black in
    Cycles (issue 17). With the *Standard* view transform the splats show the package's colours."""
    material = bpy.data.materials.get(MATERIAL_NAME)
    if material is not None and material.get(MATERIAL_VERSION_KEY) == MATERIAL_VERSION:
        return material
    if material is None:
        material = bpy.data.materials.new(MATERIAL_NAME)
    if material.node_tree is None or not material.node_tree.nodes:  # Blender < 5 needs this
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    for node in list(nodes):
        if node.type != "OUTPUT_MATERIAL":
            nodes.remove(node)
    output = next((n for n in nodes if n.type == "OUTPUT_MATERIAL"), None) or \
        nodes.new("ShaderNodeOutputMaterial")
    output.location = (300, 0)
    color = nodes.new("ShaderNodeAttribute")
    color.attribute_name = SPLAT_COLOR_ATTRIBUTE
    color.location = (-500, 100)
    opacity = nodes.new("ShaderNodeAttribute")
    opacity.attribute_name = "opacity"
    opacity.location = (-500, 300)
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 1.0
    emission.location = (-250, 0)
    transparent = nodes.new("ShaderNodeBsdfTransparent")
    transparent.location = (-250, 200)
    mix = nodes.new("ShaderNodeMixShader")
    mix.location = (50, 0)
    links.new(color.outputs["Color"], emission.inputs["Color"])
    links.new(opacity.outputs["Fac"], mix.inputs["Fac"])
    links.new(transparent.outputs["BSDF"], mix.inputs[1])
    links.new(emission.outputs["Emission"], mix.inputs[2])
    links.new(mix.outputs["Shader"], output.inputs["Surface"])
    if hasattr(material, "surface_render_method"):  # EEVEE (4.2+)
        material.surface_render_method = "DITHERED"
    material[MATERIAL_VERSION_KEY] = MATERIAL_VERSION
    return material


def ensure_splat_node_group() -> bpy.types.NodeTree:
    """The shared Geometry Nodes group: Mesh to Points (radius = mean of ``scale`` x Splat Size),
    Set Material, joined with the input mesh (its vertices stay readable after evaluation)."""
    group = bpy.data.node_groups.get(NODE_GROUP_NAME)
    if group is not None and group.bl_idname == "GeometryNodeTree" and \
            group.get(MATERIAL_VERSION_KEY) == NODE_GROUP_VERSION:
        return group
    if group is not None:  # an older add-on's group: rename it away, its users keep it
        group.name = f"{NODE_GROUP_NAME} (old)"
    group = bpy.data.node_groups.new(NODE_GROUP_NAME, "GeometryNodeTree")
    group[MATERIAL_VERSION_KEY] = NODE_GROUP_VERSION
    _new_socket(group, "Geometry", "INPUT", "NodeSocketGeometry")
    size = _new_socket(group, SPLAT_SIZE_SOCKET, "INPUT", "NodeSocketFloat")
    size.default_value = DEFAULT_SPLAT_SIZE
    size.min_value = 0.0
    _new_socket(group, "Geometry", "OUTPUT", "NodeSocketGeometry")
    nodes, links = group.nodes, group.links
    group_in = nodes.new("NodeGroupInput")
    group_in.location = (-700, 0)
    group_out = nodes.new("NodeGroupOutput")
    group_out.location = (600, 0)
    scale = nodes.new("GeometryNodeInputNamedAttribute")
    scale.data_type = "FLOAT_VECTOR"
    scale.inputs["Name"].default_value = "scale"
    scale.location = (-700, -200)
    mean = nodes.new("ShaderNodeVectorMath")
    mean.operation = "DOT_PRODUCT"
    mean.inputs[1].default_value = (1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0)
    mean.location = (-450, -200)
    radius = nodes.new("ShaderNodeMath")
    radius.operation = "MULTIPLY"
    radius.location = (-250, -200)
    to_points = nodes.new("GeometryNodeMeshToPoints")
    to_points.mode = "VERTICES"
    to_points.location = (0, 0)
    set_material = nodes.new("GeometryNodeSetMaterial")
    set_material.inputs["Material"].default_value = ensure_splat_material()
    set_material.location = (250, 0)
    # Keep the deformed vertices too (loose vertices draw nothing in object mode), so the
    # evaluated object's mesh still holds the posed Gaussian centres for scripts and tests.
    join = nodes.new("GeometryNodeJoinGeometry")
    join.location = (400, 0)
    links.new(scale.outputs["Attribute"], mean.inputs[0])
    links.new(mean.outputs["Value"], radius.inputs[0])
    links.new(group_in.outputs[SPLAT_SIZE_SOCKET], radius.inputs[1])
    links.new(group_in.outputs["Geometry"], to_points.inputs["Mesh"])
    # Points drawn by another object (the face object) are not drawn here.
    hidden = nodes.new("GeometryNodeInputNamedAttribute")
    hidden.data_type = "BOOLEAN"
    hidden.inputs["Name"].default_value = HIDE_ATTRIBUTE
    hidden.location = (-450, 200)
    shown = nodes.new("FunctionNodeBooleanMath")
    shown.operation = "NOT"
    shown.location = (-250, 200)
    links.new(hidden.outputs["Attribute"], shown.inputs[0])
    links.new(shown.outputs["Boolean"], to_points.inputs["Selection"])
    links.new(radius.outputs["Value"], to_points.inputs["Radius"])
    links.new(to_points.outputs["Points"], set_material.inputs["Geometry"])
    links.new(set_material.outputs["Geometry"], join.inputs["Geometry"])
    links.new(group_in.outputs["Geometry"], join.inputs["Geometry"])
    links.new(join.outputs["Geometry"], group_out.inputs["Geometry"])
    return group


def set_modifier_input(modifier: bpy.types.Modifier, name: str, value) -> None:
    """Set the Geometry Nodes modifier input ``name``: Blender 5.2 moved the values from ID
    properties (``modifier["Socket_1"]``) to ``modifier.properties.inputs.Socket_1.value``."""
    identifier = next(item.identifier for item in modifier.node_group.interface.items_tree
                      if getattr(item, "in_out", "") == "INPUT" and item.name == name)
    properties = getattr(modifier, "properties", None)
    if properties is not None and hasattr(properties, "inputs"):
        getattr(properties.inputs, identifier).value = value
    else:
        modifier[identifier] = value
    modifier.id_data.update_tag()


def add_splat_modifier(obj: bpy.types.Object) -> bpy.types.Modifier:
    """Add the splat Geometry Nodes modifier to ``obj`` (after its other modifiers)."""
    modifier = obj.modifiers.new(MODIFIER_NAME, "NODES")
    modifier.node_group = ensure_splat_node_group()
    obj.data.materials.append(ensure_splat_material())
    return modifier


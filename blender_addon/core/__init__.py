"""The add-on's Blender-free layer: plain Python + numpy (Blender bundles numpy, not torch).

Nothing here imports ``bpy``, torch or the backend package, so it is unit tested with plain
pytest. The bpy layer (operators, panels, properties) sits in the package above.
"""

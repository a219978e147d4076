"""Blender add-on (issue 6). Empty until then."""

"""One camera model for the whole product (conventions: ``cameras.camera``'s docstring and
``ARCHITECTURE.md``): the type and its file format (``camera``), ways to make one (``makers``)
and Blender's cameras (``blender``, the twin of the add-on's ``core/camera.py``)."""

from oneshot_avatar.cameras.blender import (
    BLENDER_TO_WORLD,
    SENSOR_FITS,
    SensorFit,
    blender_intrinsics,
    from_blender,
    to_blender,
)
from oneshot_avatar.cameras.camera import (
    CONVENTION,
    ROTATION_ATOL,
    SCHEMA,
    Camera,
    load_cameras_json,
    save_cameras_json,
    stack_cameras,
)
from oneshot_avatar.cameras.makers import (
    focal_from_fov,
    from_fit,
    front_camera,
    intrinsics,
    look_at,
    orbit_cameras,
)

__all__ = [
    "BLENDER_TO_WORLD", "CONVENTION", "ROTATION_ATOL", "SCHEMA", "SENSOR_FITS", "Camera",
    "SensorFit", "blender_intrinsics", "focal_from_fov", "from_blender", "from_fit",
    "front_camera", "intrinsics", "load_cameras_json", "look_at", "orbit_cameras",
    "save_cameras_json", "stack_cameras", "to_blender",
]

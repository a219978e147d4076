"""Add-on preferences: which backend to talk to (a URL + token, or a local backend the add-on
starts), and the connection the operators use.

The local backend (a child process) and the last connection test are runtime state kept here;
the process is stopped on unregister and when Blender quits.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy.types import AddonPreferences

from .core.client import DEFAULT_URL, ServiceClient, ServiceError
from .core.launcher import LocalBackend

# Blender 4.5+ warns about "//" in path properties unless they say they support it; 4.2-4.4
# do not know the option.
PATH_OPTIONS = ({"PATH_SUPPORTS_BLEND_RELATIVE"}
                if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties
                else set())
ADDON_ID = __package__  # "oneshot_avatar", or "bl_ext.<repo>.oneshot_avatar" as an extension
LOCAL_START_TIMEOUT_S = 180.0  # the backend loads torch and the body model before listening


class ConnectionState:
    """Runtime state shared by the operators and the preferences panel (not saved)."""

    local_backend: LocalBackend | None = None
    last_health: dict | None = None
    last_error: str = ""


@dataclass(frozen=True)
class ConnectionConfig:
    """Plain values (no bpy) a worker thread needs to reach the backend."""

    url: str | None
    token: str | None
    timeout: float
    local_backend: LocalBackend | None = None

    def client(self, *, wait_for_local: float = LOCAL_START_TIMEOUT_S) -> ServiceClient:
        """A client; for a local backend that is still starting, wait (in a worker thread) up
        to ``wait_for_local`` seconds for it to listen."""
        url = self.url
        if self.local_backend is not None:
            url = self.local_backend.url or self.local_backend.wait_until_listening(
                wait_for_local)
        return ServiceClient(url or DEFAULT_URL, self.token, timeout=self.timeout)


def get_preferences(context: bpy.types.Context | None = None) -> OneshotAvatarPreferences:
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    if addon is None:  # not enabled through the add-on system (a bare register() in scripts)
        raise ServiceError("the add-on's preferences are not available",
                           hint=f"enable the add-on '{ADDON_ID}' in Preferences > Add-ons")
    return addon.preferences


def start_local_backend(preferences: OneshotAvatarPreferences) -> LocalBackend:
    """Start (or keep) the local backend described by the preferences; returns at once."""
    backend = ConnectionState.local_backend
    if backend is not None and backend.running:
        return backend
    data_dir = bpy.path.abspath(preferences.local_data_dir) if preferences.local_data_dir else None
    backend = LocalBackend(bpy.path.abspath(preferences.local_command.strip()) or "oneshot-avatar",
                           port=preferences.local_port, data_dir=data_dir)
    backend.start()
    ConnectionState.local_backend = backend
    return backend


def stop_local_backend() -> None:
    backend, ConnectionState.local_backend = ConnectionState.local_backend, None
    if backend is not None:
        backend.stop()


def connection_config(context: bpy.types.Context | None = None, *,
                      start_local: bool = True) -> ConnectionConfig:
    """The connection the preferences describe. In local mode the backend is started when it
    is not running (``start_local``), else a :class:`ServiceError` says to start it."""
    preferences = get_preferences(context)
    if preferences.backend_mode == "LOCAL":
        backend = ConnectionState.local_backend
        if backend is None or not backend.running:
            if backend is not None and backend.state == "exited":
                error = backend.failure()
                ConnectionState.local_backend = None
                raise error
            if not start_local:
                raise ServiceError("the local backend is not running", field="backend_mode",
                                   hint="press Start Local Backend in the add-on preferences")
            backend = start_local_backend(preferences)
        return ConnectionConfig(backend.url, backend.token, preferences.timeout_s, backend)
    return ConnectionConfig(preferences.backend_url, preferences.token or None,
                            preferences.timeout_s)


def service_client(context: bpy.types.Context | None = None, *,
                   wait_for_local: float = 60.0) -> ServiceClient:
    """A client for the configured backend, for short requests from the main thread (a local
    backend that is still starting is waited for, up to ``wait_for_local`` seconds)."""
    return connection_config(context).client(wait_for_local=wait_for_local)


def describe_health(health: dict) -> str:
    """One line for the UI: version, device, rasterizer, body model and landmark detector of a
    backend."""
    body = health.get("body_model") or {}
    detector = health.get("detector") or "none (send keypoints or an aligned pose)"
    return (f"oneshot-avatar {health.get('version', '?')} on {health.get('device', '?')} "
            f"({health.get('rasterizer', '?')} rasterizer), body model "
            f"{body.get('id', '?')} ({body.get('kind', '?')}), detector {detector}")


class OneshotAvatarPreferences(AddonPreferences):
    bl_idname = ADDON_ID

    backend_mode: EnumProperty(
        name="Backend",
        items=[("URL", "Backend URL",
                "Use a running `oneshot-avatar serve` (this machine or another)"),
               ("LOCAL", "Start a Local Backend",
                "Start `oneshot-avatar serve` here when needed, stop it when Blender quits")],
        default="URL")
    backend_url: StringProperty(name="URL", default=DEFAULT_URL,
                                description="Address of `oneshot-avatar serve`")
    token: StringProperty(name="Token", subtype="PASSWORD",
                          description="The server's --token (ONESHOT_AVATAR_TOKEN); leave empty "
                                      "when it runs without one")
    local_command: StringProperty(
        name="Command", subtype="FILE_PATH", default="oneshot-avatar", options=PATH_OPTIONS,
        description="The `oneshot-avatar` executable, or a Python interpreter that has the "
                    "oneshot-avatar package installed")
    local_port: IntProperty(name="Port", default=8765, min=0, max=65535,
                            description="Port for the local backend (0: any free port)")
    local_data_dir: StringProperty(name="Data Folder", subtype="DIR_PATH", options=PATH_OPTIONS,
                                   description="Where the local backend keeps jobs and avatars "
                                               "(empty: its default)")
    timeout_s: FloatProperty(name="Timeout (s)", default=10.0, min=1.0, max=300.0,
                             description="Seconds to wait for an answer to small requests")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "backend_mode", expand=True)
        column = layout.column()
        if self.backend_mode == "URL":
            column.prop(self, "backend_url")
            column.prop(self, "token")
        else:
            column.prop(self, "local_command")
            column.prop(self, "local_port")
            column.prop(self, "local_data_dir")
            backend = ConnectionState.local_backend
            state = backend.state if backend is not None else "stopped"
            row = column.row(align=True)
            row.label(text=f"Local backend: {state}"
                           + (f" at {backend.url}" if backend is not None and backend.url else ""))
            row.operator("oneshot_avatar.start_local_backend", text="Start", icon="PLAY")
            row.operator("oneshot_avatar.stop_local_backend", text="Stop", icon="PAUSE")
        column.prop(self, "timeout_s")
        row = layout.row()
        row.operator("oneshot_avatar.test_connection", icon="LINKED")
        if ConnectionState.last_health is not None:
            layout.label(text=describe_health(ConnectionState.last_health), icon="CHECKMARK")
        elif ConnectionState.last_error:
            layout.label(text=ConnectionState.last_error, icon="ERROR")


CLASSES = (OneshotAvatarPreferences,)


def register() -> None:
    atexit.register(stop_local_backend)


def unregister() -> None:
    atexit.unregister(stop_local_backend)
    stop_local_backend()
    ConnectionState.last_health = None
    ConnectionState.last_error = ""

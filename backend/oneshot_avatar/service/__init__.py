"""``oneshot-avatar serve``: the HTTP job server (reconstructions and renders) that the Blender
add-on, scripts and remote clients drive. See ``app.py`` for the API and ``core.py`` for jobs."""

"""``csnln serve``: a local web app to upscale images, compare them with bicubic and see
where the attentions borrow from (the ``[web]`` extra: Starlette and uvicorn).

Python::

    from csnln.web import ServeSettings, create_app
    import uvicorn

    uvicorn.run(create_app(ServeSettings(max_pixels=500_000)), host="127.0.0.1", port=8000)
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy: `import csnln.web` works without the [web] extra; using the app needs it.
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)

"""Redraws the built-in samples: ``python -m jaxstyle.samples``."""

from jaxstyle.samples import content_path, draw_landscape, draw_strokes, style_path

draw_landscape().save(content_path())
draw_strokes().save(style_path())
print(f"wrote {content_path()} and {style_path()}")

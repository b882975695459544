"""Redraws the built-in samples: ``python -m jaxstyle.samples``."""

from jaxstyle.samples import content_path, draw_landscape, draw_sky_mask, draw_strokes, mask_path, style_path

draw_landscape().save(content_path())
draw_strokes().save(style_path())
draw_sky_mask().save(mask_path())
print(f"wrote {content_path()}, {style_path()} and {mask_path()}")

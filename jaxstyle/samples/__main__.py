"""Redraws the built-in samples: ``python -m jaxstyle.samples``."""

from PIL import ImageOps

from jaxstyle import samples

samples.draw_landscape().save(samples.content_path())
samples.draw_strokes().save(samples.style_path())
samples.draw_mosaic().save(samples.mosaic_path())
sky = samples.draw_sky_mask()
sky.save(samples.mask_path())
ImageOps.invert(sky).save(samples.ground_mask_path())
print(f"wrote the samples in {samples.HERE}")

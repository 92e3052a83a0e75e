"""Draws the app's PNG icons from the shape of static/icons/icon.svg (a white cross on blue).

    .venv/bin/python tools/make_icons.py

- icon-192/512: the rounded square, transparent corners ("any").
- maskable-192/512: full bleed, for Android to crop to its own shape. The cross reaches 29 % of
  the width from the centre, inside the safe zone (a circle of 40 %), so no crop cuts it.
- apple-touch-icon (180): full bleed and opaque: iOS rounds the corners itself and would fill
  transparent ones with black.
Drawn 4 times larger and scaled down, for smooth edges. The files are committed; run this again
only when the design changes.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

BLUE, WHITE = (0x1F, 0x5F, 0x8B, 255), (255, 255, 255, 255)
# icon.svg's cross, on its 512 grid.
CROSS = [(216, 112), (296, 112), (296, 216), (400, 216), (400, 296), (296, 296), (296, 400), (216, 400),
         (216, 296), (112, 296), (112, 216), (216, 216)]
ICONS = Path(__file__).resolve().parent.parent / "static" / "icons"
SUPERSAMPLE = 4


def draw(size: int, rounded: bool) -> Image.Image:
    big = size * SUPERSAMPLE
    scale = big / 512
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    if rounded:
        pen.rounded_rectangle((0, 0, big - 1, big - 1), radius=round(96 * scale), fill=BLUE)
    else:
        pen.rectangle((0, 0, big - 1, big - 1), fill=BLUE)
    pen.polygon([(x * scale, y * scale) for x, y in CROSS], fill=WHITE)
    return image.resize((size, size), Image.LANCZOS)


def main() -> None:
    for size in (192, 512):
        draw(size, rounded=True).save(ICONS / f"icon-{size}.png", optimize=True)
        draw(size, rounded=False).convert("RGB").save(ICONS / f"maskable-{size}.png", optimize=True)
    draw(180, rounded=False).convert("RGB").save(ICONS / "apple-touch-icon.png", optimize=True)


if __name__ == "__main__":
    main()

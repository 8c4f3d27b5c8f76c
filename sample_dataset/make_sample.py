"""Regenerate the sample dataset: a dozen small pictures of one cartoon character, "kaede".

Run from anywhere: `python sample_dataset/make_sample.py`. Needs Pillow only, no network.
Deterministic: every run writes the same bytes (no randomness, no PNG metadata or timestamps,
fixed JPEG/WebP settings) for a given Pillow build.

The captions imitate a WD14 tagger's output, flaws included: tags sorted alphabetically, some
files with Danbooru underscores, one escaped character tag, rating tags (`general`,
`sensitive`), `blurry` on the two blurred images, and one image left without a caption.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "10_kaede"  # kohya folder naming: <repeats>_<trigger>

# Drawn at SUPERSAMPLE times the final size, then reduced: smooth edges, flat colours.
SUPERSAMPLE = 4
JPEG_QUALITY = 88
WEBP_QUALITY = 85
BLUR_RADIUS = 2.2

# Flat palette: strong colours so the character still reads in a half-block terminal preview.
INK = (45, 30, 30)
HAIR = (22, 22, 30)
SKIN = (255, 220, 188)
EYE = (105, 58, 28)
MOUTH = (185, 55, 60)
BLUSH = (248, 150, 150)
SHIRT = (246, 128, 24)
PANTS = (118, 118, 128)
SOCKS = (188, 188, 196)
SHOES = (92, 58, 40)
WHITE = (255, 255, 255)

Point = tuple[float, float]


class Pen:
    """Draws in design units (a standing figure is 100 wide, 200 tall) mapped onto pixels."""

    def __init__(self, draw: ImageDraw.ImageDraw, ox: float, oy: float, scale: float) -> None:
        self.draw = draw
        self.ox = ox
        self.oy = oy
        self.scale = scale

    def _pt(self, x: float, y: float) -> tuple[float, float]:
        return (self.ox + x * self.scale, self.oy + y * self.scale)

    def _box(self, box: tuple[float, float, float, float]) -> list[float]:
        x0, y0 = self._pt(box[0], box[1])
        x1, y1 = self._pt(box[2], box[3])
        return [x0, y0, x1, y1]

    def _width(self, width: float) -> int:
        return max(1, round(width * self.scale))

    def ellipse(self, box, fill=None, outline=INK, width: float = 1.4) -> None:
        self.draw.ellipse(self._box(box), fill=fill, outline=outline, width=self._width(width))

    def rect(self, box, fill=None, outline=INK, width: float = 1.4) -> None:
        self.draw.rectangle(self._box(box), fill=fill, outline=outline, width=self._width(width))

    def poly(self, points: list[Point], fill=None, outline=INK, width: float = 1.4) -> None:
        pts = [self._pt(x, y) for x, y in points]
        self.draw.polygon(pts, fill=fill, outline=outline, width=self._width(width))

    def line(self, points: list[Point], fill=INK, width: float = 1.6) -> None:
        pts = [self._pt(x, y) for x, y in points]
        self.draw.line(pts, fill=fill, width=self._width(width), joint="curve")

    def arc(self, box, start: float, end: float, fill=INK, width: float = 1.6) -> None:
        self.draw.arc(self._box(box), start, end, fill=fill, width=self._width(width))


# --- the character --------------------------------------------------------------------------


def draw_head(pen: Pen, eyes: str = "open", mouth: str = "smile", blush: bool = False) -> None:
    """Short black bob with blunt bangs; brown eyes (open) or happy arcs (closed)."""
    pen.ellipse((18, 4, 82, 70), fill=HAIR)  # back of the hair
    pen.rect((18, 34, 82, 66), fill=HAIR, outline=None)  # bob falls to the chin
    pen.ellipse((28, 16, 72, 66), fill=SKIN)  # face
    # Bangs: a blunt, slightly jagged fringe over the forehead.
    pen.poly(
        [
            (22, 40),
            (24, 16),
            (38, 6),
            (62, 6),
            (76, 16),
            (78, 40),
            (70, 33),
            (63, 38),
            (56, 32),
            (50, 37),
            (44, 32),
            (37, 38),
            (30, 33),
        ],
        fill=HAIR,
    )
    if eyes == "open":
        for x in (36, 55):
            pen.ellipse((x, 39, x + 9, 50), fill=EYE, width=1.0)
            pen.ellipse((x + 2, 40.5, x + 5, 44), fill=WHITE, outline=None)
    else:  # closed, smiling eyes: two downward-open arcs
        for x in (35, 54):
            pen.arc((x, 40, x + 11, 50), 200, 340, width=2.0)
    if blush:
        pen.ellipse((31, 50, 40, 55), fill=BLUSH, outline=None)
        pen.ellipse((60, 50, 69, 55), fill=BLUSH, outline=None)
    if mouth == "open":
        pen.ellipse((45, 53, 55, 61), fill=MOUTH, width=1.0)
    else:
        pen.arc((43, 50, 57, 59), 20, 160, width=1.8)


def draw_torso(pen: Pen, arms: str = "down") -> None:
    """Neck, orange long-sleeved shirt, and the arms (hanging down or holding a cup)."""
    pen.rect((45, 62, 55, 74), fill=SKIN)
    if arms == "down":
        for side in (1, -1):
            # Sleeve from the shoulder down the side; hand below it.
            xs = [50 + side * d for d in (19, 29, 34, 26, 21)]
            pen.poly(
                [(xs[0], 72), (xs[1], 76), (xs[2], 114), (xs[3], 116), (xs[4], 90)], fill=SHIRT
            )
            hx = 50 + side * 30
            pen.ellipse((hx - 5, 112, hx + 5, 122), fill=SKIN)
    pen.poly([(31, 70), (69, 70), (73, 122), (27, 122)], fill=SHIRT)
    pen.poly([(42, 70), (50, 78), (58, 70)], fill=SKIN, width=1.0)  # collar opening
    if arms == "cup":
        for side in (1, -1):
            xs = [50 + side * d for d in (19, 29, 32, 24, 6, 6, 20)]
            pen.poly(
                [
                    (xs[0], 72),
                    (xs[1], 76),
                    (xs[2], 104),
                    (xs[3], 110),
                    (xs[4], 104),
                    (xs[5], 96),
                    (xs[6], 98),
                ],
                fill=SHIRT,
            )
        # Mug held in both hands at chest height.
        pen.rect((41, 80, 59, 102), fill=WHITE)
        pen.arc((55, 84, 66, 96), 270, 90, width=2.2)
        pen.ellipse((42, 78, 58, 84), fill=(110, 62, 34), width=1.0)
        pen.ellipse((36, 92, 46, 102), fill=SKIN)
        pen.ellipse((54, 92, 64, 102), fill=SKIN)


def draw_legs_standing(pen: Pen, socks: bool) -> None:
    """Grey trousers; grey socks at the ankles, or brown shoes."""
    pen.poly([(27, 120), (50, 120), (49, 184), (30, 184)], fill=PANTS)
    pen.poly([(50, 120), (73, 120), (70, 184), (51, 184)], fill=PANTS)
    if socks:
        pen.rect((31, 182, 48, 190), fill=SOCKS, width=1.0)
        pen.rect((52, 182, 69, 190), fill=SOCKS, width=1.0)
        pen.ellipse((27, 186, 48, 198), fill=SOCKS)
        pen.ellipse((52, 186, 73, 198), fill=SOCKS)
    else:
        pen.ellipse((26, 182, 49, 198), fill=SHOES)
        pen.ellipse((51, 182, 74, 198), fill=SHOES)


def draw_legs_sitting(pen: Pen, socks: bool, cushion: tuple[int, int, int] | None) -> None:
    """Cross-legged: knees out to the sides, feet crossed in front (socks showing)."""
    if cushion is not None:
        pen.ellipse((-6, 138, 106, 172), fill=cushion)
    pen.poly(
        [(27, 118), (73, 118), (96, 140), (90, 156), (50, 148), (10, 156), (4, 140)], fill=PANTS
    )
    pen.line([(50, 122), (50, 146)], width=1.2)
    foot = SOCKS if socks else SHOES
    pen.ellipse((30, 140, 52, 154), fill=foot)
    pen.ellipse((48, 140, 70, 154), fill=foot)


def draw_kaede(
    pen: Pen,
    pose: str = "standing",
    eyes: str = "open",
    mouth: str = "smile",
    blush: bool = False,
    socks: bool = True,
    arms: str = "down",
    cushion: tuple[int, int, int] | None = None,
) -> None:
    if pose == "standing":
        draw_legs_standing(pen, socks)
    else:
        draw_legs_sitting(pen, socks, cushion)
    draw_torso(pen, arms)
    draw_head(pen, eyes, mouth, blush)


def figure_pen(
    draw: ImageDraw.ImageDraw, cx: float, top: float, height: float, design_height: float
) -> Pen:
    """A pen that draws a figure `design_height` design units tall spanning `height` pixels
    from `top`, centred on `cx` (all in final-image pixels, before supersampling)."""
    scale = height * SUPERSAMPLE / design_height
    return Pen(draw, cx * SUPERSAMPLE - 50 * scale, top * SUPERSAMPLE, scale)


# --- backgrounds ----------------------------------------------------------------------------


def bg_plain(img: Image.Image, colour: tuple[int, int, int]) -> None:
    ImageDraw.Draw(img).rectangle([0, 0, img.width, img.height], fill=colour)


def bg_room_window(img: Image.Image, window_box: tuple[float, float, float, float]) -> None:
    """Plain wall, a floor band and a four-pane window showing sky."""
    d = ImageDraw.Draw(img)
    w, h = img.size
    d.rectangle([0, 0, w, h], fill=(238, 226, 200))
    d.rectangle([0, int(h * 0.80), w, h], fill=(186, 150, 110))
    x0, y0, x1, y1 = (v * s for v, s in zip(window_box, (w, h, w, h), strict=False))
    frame = max(2, w // 40)
    d.rectangle([x0, y0, x1, y1], fill=(150, 205, 245), outline=(250, 250, 250), width=frame)
    d.line([((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1)], fill=(250, 250, 250), width=frame)
    d.line([(x0, (y0 + y1) / 2), (x1, (y0 + y1) / 2)], fill=(250, 250, 250), width=frame)


def bg_outdoors(img: Image.Image, horizon: float) -> None:
    """Blue sky with two clouds over a green field."""
    d = ImageDraw.Draw(img)
    w, h = img.size
    d.rectangle([0, 0, w, h], fill=(110, 180, 240))
    for cx, cy, r in ((0.2, 0.12, 0.10), (0.78, 0.22, 0.08)):
        for dx, dy, k in ((-1.0, 0.2, 0.8), (0.0, 0.0, 1.0), (1.0, 0.2, 0.8)):
            rr = r * k * w
            x, y = (cx + dx * r) * w, (cy + dy * r) * h
            d.ellipse([x - rr, y - rr * 0.7, x + rr, y + rr * 0.7], fill=(250, 250, 252))
    d.rectangle([0, int(h * horizon), w, h], fill=(96, 170, 70))


# --- the images -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    stem: str
    ext: str  # ".png", ".jpg" or ".webp"
    size: tuple[int, int]
    paint: Callable[[Image.Image, ImageDraw.ImageDraw, int], None]
    caption: str | None  # None: this image has no caption file
    blurry: bool = False


def paint_window_sitting(img: Image.Image, d: ImageDraw.ImageDraw, w: int) -> None:
    bg_room_window(img, (0.08, 0.06, 0.92, 0.52))
    draw_kaede(
        figure_pen(d, w / 2, 12, 146, 172),
        pose="sitting",
        eyes="closed",
        blush=True,
        cushion=(200, 70, 80),
    )


def paint_standing_white(img: Image.Image, d: ImageDraw.ImageDraw, w: int) -> None:
    bg_plain(img, (255, 255, 255))
    draw_kaede(figure_pen(d, w / 2, 6, 168, 200), pose="standing")


def paint_outdoors_standing(img: Image.Image, d: ImageDraw.ImageDraw, w: int) -> None:
    bg_outdoors(img, 0.78)
    draw_kaede(figure_pen(d, w / 2, 10, 200, 200), pose="standing", mouth="open")
    # Tall grass in front hides the feet.
    ImageDraw.Draw(img).rectangle(
        [0, int(img.height * 0.86), img.width, img.height], fill=(80, 150, 58)
    )


def paint_sitting_cup(img: Image.Image, d: ImageDraw.ImageDraw, w: int) -> None:
    bg_room_window(img, (0.55, 0.05, 1.05, 0.45))
    draw_kaede(
        figure_pen(d, w / 2, 8, 150, 172), pose="sitting", arms="cup", cushion=(70, 110, 190)
    )


def paint_portrait_blush(img: Image.Image, d: ImageDraw.ImageDraw, w: int) -> None:
    bg_plain(img, (250, 214, 222))
    draw_kaede(figure_pen(d, w / 2, 8, 250, 200), mouth="open", blush=True)


def paint_standing_blurry(img: Image.Image, d: ImageDraw.ImageDraw, w: int) -> None:
    bg_plain(img, (205, 225, 240))
    draw_kaede(figure_pen(d, w / 2, 6, 150, 200), eyes="closed", socks=False)


def paint_outdoors_sitting(img: Image.Image, d: ImageDraw.ImageDraw, w: int) -> None:
    bg_outdoors(img, 0.55)
    draw_kaede(figure_pen(d, w / 2, 22, 150, 172), pose="sitting", eyes="closed")


def paint_cup_blurry(img: Image.Image, d: ImageDraw.ImageDraw, w: int) -> None:
    bg_plain(img, (236, 222, 196))
    draw_kaede(figure_pen(d, w / 2, 10, 230, 172), pose="sitting", arms="cup")


def paint_yellow_closed_eyes(img: Image.Image, d: ImageDraw.ImageDraw, w: int) -> None:
    bg_plain(img, (252, 232, 120))
    draw_kaede(figure_pen(d, w / 2, 5, 134, 200), eyes="closed", blush=True)


def paint_window_standing(img: Image.Image, d: ImageDraw.ImageDraw, w: int) -> None:
    bg_room_window(img, (-0.05, 0.04, 0.45, 0.50))
    draw_kaede(figure_pen(d, w * 0.58, 8, 150, 200), socks=False)


def paint_upper_body_white(img: Image.Image, d: ImageDraw.ImageDraw, w: int) -> None:
    bg_plain(img, (255, 255, 255))
    draw_kaede(figure_pen(d, w / 2, 6, 210, 200))


def paint_full_body_closed_eyes(img: Image.Image, d: ImageDraw.ImageDraw, w: int) -> None:
    bg_plain(img, (200, 236, 214))
    draw_kaede(figure_pen(d, w / 2, 8, 162, 200), eyes="closed")


SAMPLES = (
    Sample(
        "kaede_01",
        ".png",
        (128, 160),
        paint_window_sitting,
        # The worked example of docs/tagging.md, verbatim.
        "1girl, bangs, black hair, blush, closed eyes, cushion, grey pants, grey socks, "
        "orange shirt, short hair, simple background, sitting, smile, solo, window",
    ),
    Sample(
        "kaede_02",
        ".png",
        (112, 180),
        paint_standing_white,
        "1girl, bangs, black hair, brown eyes, full body, general, grey pants, grey socks, "
        "looking at viewer, orange shirt, shirt, short hair, simple background, smile, "
        "solo, standing, white background",
    ),
    Sample(
        "kaede_03",
        ".png",
        (144, 200),
        paint_outdoors_standing,
        "1girl, bangs, black hair, blue sky, brown eyes, cloud, day, general, grey pants, "
        "open mouth, orange shirt, outdoors, pants, short hair, sky, smile, solo, standing",
    ),
    Sample(
        "kaede_04",
        ".png",
        (128, 160),
        paint_sitting_cup,
        "1girl, bangs, black hair, brown eyes, cup, cushion, general, grey pants, "
        "holding, holding cup, indoors, looking at viewer, orange shirt, short hair, "
        "sitting, smile, solo",
    ),
    Sample(
        "kaede_05",
        ".jpg",
        (120, 150),
        paint_portrait_blush,
        "1girl, bangs, black hair, blush, brown eyes, looking at viewer, open mouth, "
        "orange shirt, sensitive, short hair, simple background, solo, upper body",
    ),
    Sample(
        "kaede_06",
        ".png",
        (112, 160),
        paint_standing_blurry,
        "1girl, black hair, blurry, general, grey pants, orange shirt, short hair, "
        "simple background, solo, standing",
        blurry=True,
    ),
    Sample(
        "kaede_07",
        ".webp",
        (144, 176),
        paint_outdoors_sitting,
        "1girl, bangs, black hair, closed eyes, day, general, grass, grey pants, "
        "grey socks, orange shirt, outdoors, short hair, sitting, sky, smile, solo",
    ),
    Sample(
        "kaede_08",
        ".png",
        (128, 160),
        paint_cup_blurry,
        "1girl, black hair, blurry, cup, general, holding cup, orange shirt, short hair, "
        "solo, upper body",
        blurry=True,
    ),
    Sample("kaede_09", ".png", (96, 144), paint_yellow_closed_eyes, None),
    Sample(
        "kaede_10",
        ".jpg",
        (128, 160),
        paint_window_standing,
        "1girl, bangs, black_hair, brown_eyes, general, grey_pants, indoors, "
        "looking_at_viewer, orange_shirt, shirt, short_hair, solo, standing, window",
    ),
    Sample(
        "kaede_11",
        ".png",
        (96, 128),
        paint_upper_body_white,
        "1girl, bangs, black_hair, brown_eyes, general, looking_at_viewer, orange_shirt, "
        "short_hair, simple_background, smile, solo, upper_body, white_background",
    ),
    Sample(
        "kaede_12",
        ".png",
        (120, 176),
        paint_full_body_closed_eyes,
        "1girl, bangs, black hair, closed eyes, full body, general, grey pants, grey socks, "
        "kaede \\(sample\\), orange shirt, short hair, simple background, smile, solo, "
        "standing",
    ),
)


def render(sample: Sample) -> Image.Image:
    w, h = sample.size
    big = Image.new("RGB", (w * SUPERSAMPLE, h * SUPERSAMPLE), WHITE)
    sample.paint(big, ImageDraw.Draw(big), w)
    img = big.resize((w, h), Image.Resampling.LANCZOS)
    if sample.blurry:
        img = img.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    return img


def save(img: Image.Image, path: Path) -> None:
    # No metadata anywhere: Pillow writes no PNG time/text chunks unless given pnginfo.
    if path.suffix == ".png":
        img.save(path, "PNG", optimize=True)
    elif path.suffix == ".jpg":
        img.save(path, "JPEG", quality=JPEG_QUALITY, optimize=True, subsampling="4:2:0")
    elif path.suffix == ".webp":
        img.save(path, "WEBP", quality=WEBP_QUALITY, method=6)
    else:
        raise ValueError(f"unsupported image extension: {path.suffix}")


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for sample in SAMPLES:
        save(render(sample), OUT_DIR / f"{sample.stem}{sample.ext}")
        caption_path = OUT_DIR / f"{sample.stem}.txt"
        if sample.caption is None:
            caption_path.unlink(missing_ok=True)
        else:
            caption_path.write_bytes((sample.caption + "\n").encode("utf-8"))
    print(f"wrote {len(SAMPLES)} images to {OUT_DIR}")


if __name__ == "__main__":
    main()

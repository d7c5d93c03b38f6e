#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Renders the test photos of the image-detection example, with ground truth.

Draws 1200x900 RGB images with ImageMagick's `convert` and the DejaVu fonts
(Debian: imagemagick, fonts-dejavu-core): plain, gradient and noisy
backgrounds with one to four lines of known text, in sizes from 40 to 80 px
at known positions, images without any text, and one with fifteen short
labels (more than the pipeline's 12 boxes per image). Each image is written as
PNG (lossless: what the raw-pixel tests send) and as JPEG (for the encoded
pipeline), and truth.json lists, per image, every text line with its exact
rendered extent: each line is also drawn alone, at the same place with the
same font, on a transparent canvas, and `-trim` gives the box of the pixels
it touched.

    /usr/bin/python3 examples/image-detection/make_images.py OUTDIR

truth.json:

    {"width": 1200, "height": 900,
     "images": [{"name": "img00", "png": "img00.png", "jpeg": "img00.jpg",
                 "background": "...",
                 "lines": [{"text": "...", "font": "DejaVuSans.ttf",
                            "size": 64, "at": [x, y],
                            "box": [x0, y0, x1, y1]}]}]}

`box` is in pixels, x1 and y1 exclusive. The images depend only on this
file, ImageMagick and the fonts, so two runs on one machine give the same
files. The module also offers read_rgb(path), which any image file goes
through to give (height, width, RGB bytes), for the client and the tests.
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

WIDTH, HEIGHT = 1200, 900
FONT_DIR = pathlib.Path("/usr/share/fonts/truetype/dejavu")
SANS = "DejaVuSans.ttf"
SANS_BOLD = "DejaVuSans-Bold.ttf"
SERIF = "DejaVuSerif.ttf"
MONO = "DejaVuSansMono.ttf"

# Backgrounds, as convert arguments that produce a WIDTHxHEIGHT canvas.
BACKGROUNDS = {
    "white": ["xc:white"],
    "grey": ["xc:#d9d9d6"],
    "dark": ["xc:#1f2d3d"],
    "gradient": ["gradient:#f4efe1-#b9c7d6"],
    "noisy-beige": ["xc:#e6dcc3", "-seed", "7", "-attenuate", "0.6",
                    "+noise", "Gaussian"],
    "noisy-gradient": ["gradient:#dfe9f2-#f5e6d3", "-seed", "11",
                       "-attenuate", "0.8", "+noise", "Gaussian"],
    "noisy-grey": ["xc:#bdbdbd", "-seed", "23", "-attenuate", "0.9",
                   "+noise", "Gaussian"],
}

# (background, [(text, font, size px, x, baseline y, colour)]).
# Lines are far enough apart (and short enough) for a detector to see each
# as one line; every line ends well inside the image.
SCENES = [
    ("white", [("Inference at the edge", SANS, 64, 120, 200, "black")]),
    ("grey", [("Modular pipelines", SERIF, 48, 80, 160, "#10206a"),
              ("served over gRPC", SERIF, 48, 560, 700, "#10206a")]),
    ("noisy-beige", [("OPEN 9:00 - 18:00", SANS_BOLD, 56, 90, 150, "#202020"),
                     ("Platform 4 to Porto", SANS, 40, 300, 470, "#302010"),
                     ("Exit only", SANS_BOLD, 72, 640, 780, "#8a1010")]),
    ("gradient", [("temperature 21.5 C", MONO, 44, 60, 120, "black"),
                  ("humidity 48 %", MONO, 52, 60, 330, "black"),
                  ("battery 87", MONO, 64, 60, 560, "black"),
                  ("node 3 of 12", MONO, 80, 520, 820, "#203060")]),
    ("dark", [("Cloud Edge IoT", SANS_BOLD, 80, 250, 330, "white"),
              ("continuum", SANS, 72, 380, 620, "#f0e060")]),
    ("noisy-gradient", [("Warehouse B", SANS_BOLD, 76, 340, 480, "#102040")]),
    ("white", []),
    ("noisy-grey", []),
    # Fifteen labels: more than the 12 boxes per image the pipeline returns.
    ("grey", [(f"shelf {3 * r + c + 1:02d}", SANS, 40 + 4 * r, 80 + 400 * c,
               110 + 170 * r, "black") for r in range(5) for c in range(3)]),
]


class ImageError(RuntimeError):
    """convert or identify failed, or is missing."""


def _run(cmd, binary=False):
    try:
        done = subprocess.run(cmd, capture_output=True, check=False)
    except FileNotFoundError as e:
        raise ImageError(f"{cmd[0]} not found (Debian: apt-get install "
                         f"imagemagick)") from e
    if done.returncode != 0:
        raise ImageError(f"{' '.join(cmd[:6])}... failed "
                         f"({done.returncode}): "
                         f"{done.stderr.decode(errors='replace').strip()}")
    return done.stdout if binary else done.stdout.decode()


def check_tools():
    """Raises ImageError unless ImageMagick and the fonts are usable."""
    if shutil.which("convert") is None:
        raise ImageError("ImageMagick's convert is not installed "
                         "(Debian: apt-get install imagemagick)")
    for font in (SANS, SANS_BOLD, SERIF, MONO):
        if not (FONT_DIR / font).is_file():
            raise ImageError(f"font {FONT_DIR / font} is missing "
                             f"(Debian: apt-get install fonts-dejavu-core)")
    out = _run(["convert", "-size", "4x4", "xc:red", "-depth", "8", "rgb:-"],
               binary=True)
    if out != b"\xff\x00\x00" * 16:
        raise ImageError("convert does not produce raw RGB pixels; is it "
                         "ImageMagick?")


def _annotate(font, size, x, y, colour, text):
    return ["-font", str(FONT_DIR / font), "-pointsize", str(size),
            "-fill", colour, "-annotate", f"+{x}+{y}", text]


def line_box(font, size, x, y, text):
    """The pixel extent [x0, y0, x1, y1) of one line drawn alone."""
    cmd = ["convert", "-size", f"{WIDTH}x{HEIGHT}", "xc:none",
           *_annotate(font, size, x, y, "black", text),
           "-format", "%@", "info:"]
    out = _run(cmd).strip()
    m = re.fullmatch(r"(\d+)x(\d+)\+(\d+)\+(\d+)", out)
    if not m:
        raise ImageError(f"unexpected trim geometry {out!r} for {text!r}")
    w, h, x0, y0 = map(int, m.groups())
    return [x0, y0, x0 + w, y0 + h]


def render(out_dir, jpeg_quality=90):
    """Writes every scene as PNG and JPEG and truth.json; returns the truth."""
    check_tools()
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for i, (background, lines) in enumerate(SCENES):
        name = f"img{i:02d}"
        cmd = ["convert", "-size", f"{WIDTH}x{HEIGHT}",
               *BACKGROUNDS[background]]
        truth_lines = []
        for text, font, size, x, y, colour in lines:
            cmd += _annotate(font, size, x, y, colour, text)
            truth_lines.append({"text": text, "font": font, "size": size,
                                "at": [x, y],
                                "box": line_box(font, size, x, y, text)})
        # Plain 8-bit RGB, no alpha, no metadata: what the server decodes.
        png = out_dir / f"{name}.png"
        jpeg = out_dir / f"{name}.jpg"
        _run(cmd + ["-alpha", "off", "-depth", "8", "-type", "TrueColor",
                    "-strip", f"PNG24:{png}"])
        _run(["convert", str(png), "-strip", "-quality", str(jpeg_quality),
              "-sampling-factor", "4:2:0", str(jpeg)])
        images.append({"name": name, "png": png.name, "jpeg": jpeg.name,
                       "background": background, "lines": truth_lines})
    truth = {"width": WIDTH, "height": HEIGHT, "images": images}
    (out_dir / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth


def read_rgb(path):
    """(height, width, bytes of height*width*3 RGB) of any image file."""
    dims = _run(["identify", "-format", "%w %h\n", str(path)]).split()
    if len(dims) < 2:
        raise ImageError(f"identify: no size for {path}")
    w, h = int(dims[0]), int(dims[1])
    # [0]: the first frame only; -alpha remove: transparent parts on black.
    data = _run(["convert", f"{path}[0]", "-background", "black",
                 "-alpha", "remove", "-colorspace", "sRGB", "-depth", "8",
                 "rgb:-"], binary=True)
    if len(data) != w * h * 3:
        raise ImageError(f"{path}: {len(data)} bytes of RGB, expected "
                         f"{w}x{h}x3")
    return h, w, data


def main():
    p = argparse.ArgumentParser(
        description="render the image-detection test photos and truth.json")
    p.add_argument("out_dir", help="folder to write into (created)")
    p.add_argument("--jpeg-quality", type=int, default=90)
    args = p.parse_args()
    try:
        truth = render(args.out_dir, args.jpeg_quality)
    except ImageError as e:
        print(f"make_images: {e}", file=sys.stderr)
        return 1
    n_lines = sum(len(im["lines"]) for im in truth["images"])
    print(f"make_images: {len(truth['images'])} images, {n_lines} text lines "
          f"in {os.path.abspath(args.out_dir)}")
    for im in truth["images"]:
        boxes = "  ".join(f"{ln['box']}" for ln in im["lines"]) or "(no text)"
        print(f"  {im['name']}  {im['background']:<15} {boxes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

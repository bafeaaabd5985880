"""How inference time and memory grow with the picture, from 256² to 2048², and where the attention's
quadratic work takes over.

    python benchmarks/growth.py                                   # 256,512,1024,2048: table
    python benchmarks/growth.py --plot docs/growth.png            # and the log-log picture

Each size runs ``benchmarks/inference.py`` in a fresh process (peak memory is then the size's own): a
random picture with a centred square hole of a quarter of its area, one warm-up pass, then the median of
``--repeats`` passes, with the contextual attention timed inside each pass. The exponents say how each
column grows with the number of pixels between one size and the next: 1 is linear in the pixels, 2 is
quadratic. The attention scores every hole-reaching position against every usable background patch, so
for a hole of a fixed share of the picture its work grows with the square of the pixels; the
convolutions grow linearly; memory stays about linear, since the attention is computed in bounded tiles.
The picture is drawn with OpenCV (a dependency already); nothing else is needed.
"""
from __future__ import annotations

import math
import os
import sys

import cv2
import numpy as np

from fresh_process import measure_fresh
from deepfill.utils.cli import ArgumentParser, UserError, add_cpu_precision, run
from deepfill.utils.files import atomic_path

INFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inference.py")


def measure_sizes(sizes: list[int], repeats: int, checkpoint: str | None, precision: str = "float32"
                  ) -> list[dict[str, float]]:
    """One row per size: seconds per pass (all, attention, the rest) and peak resident memory."""
    rows = []
    for size in sizes:
        command = [sys.executable, INFERENCE, "--size", str(size), "--repeats", str(repeats), "--device", "cpu",
                   "--cpu-precision", precision]
        command += ["--checkpoint", checkpoint] if checkpoint else []
        fields, failure = measure_fresh(command)
        if fields is None:
            raise UserError(f"{size}x{size} failed: {failure}")
        total, attention = float(fields["median_s"]), float(fields["attention_s"])
        peak = float(fields["peak_rss_mb"])
        rows.append({"size": size, "total": total, "attention": attention, "rest": total - attention,
                     "peak": peak, "work": peak - float(fields["loaded_rss_mb"])})
        print(f"  {size}x{size}: {total:.2f} s, {fields['peak_rss_mb']} MB", file=sys.stderr, flush=True)
    return rows


def exponent(rows: list[dict[str, float]], index: int, key: str) -> str:
    """How ``key`` grows with the pixels from row ``index - 1`` to row ``index`` (log-log slope)."""
    if index == 0:
        return ""
    low, high = rows[index - 1], rows[index]
    return f"{math.log(high[key] / low[key]) / math.log((high['size'] / low['size']) ** 2):.2f}"


def print_table(rows: list[dict[str, float]]) -> None:
    print(f"{'size':>9} {'total s':>8} {'attention s':>12} {'rest s':>7} {'attention':>10} {'peak MB':>8} "
          f"{'work MB':>8}   growth with the pixels: total, attention, rest, work memory")
    for index, row in enumerate(rows):
        slopes = ", ".join(exponent(rows, index, key) for key in ("total", "attention", "rest", "work"))
        print(f"{row['size']:>4}x{row['size']:<4} {row['total']:>8.2f} {row['attention']:>12.2f} {row['rest']:>7.2f} "
              f"{row['attention'] / row['total']:>9.0%} {row['peak']:>8.0f} {row['work']:>8.0f}   {slopes}")
    print("(work MB: the peak above the process with Paddle and the model loaded)")


# -- the picture ------------------------------------------------------------------------------------------

WHITE, GREY, BLACK = (255, 255, 255), (220, 220, 220), (40, 40, 40)
SERIES = {"total": (40, 40, 200), "attention": (200, 90, 30), "rest": (40, 150, 40), "peak": (150, 40, 150),
          "work": (30, 140, 200)}


def _panel(rows, keys: list[str], unit: str, title: str, size: tuple[int, int] = (560, 440)) -> np.ndarray:
    """One log-log chart: the pixels across, ``keys`` of ``rows`` up, with decade grid lines and dashed
    guides of slope 1 and 2 (linear and quadratic in the pixels) through the first point of the last key."""
    width, height = size
    left, right, top, bottom = 70, 20, 40, 50
    image = np.full((height, width, 3), 255, np.uint8)
    xs = np.log10([row["size"] ** 2 for row in rows])
    values = np.log10([[row[key] for key in keys] for row in rows])
    x_low, x_high = xs.min() - 0.15, xs.max() + 0.15
    y_low, y_high = math.floor(values.min()), math.ceil(values.max())
    y_high = max(y_high, y_low + 1)

    def at(x: float, y: float) -> tuple[int, int]:
        return (int(round(left + (x - x_low) / (x_high - x_low) * (width - left - right))),
                int(round(height - bottom - (y - y_low) / (y_high - y_low) * (height - top - bottom))))

    for decade in range(y_low, y_high + 1):
        for step in (1, 2, 5):
            y = decade + math.log10(step)
            if y > y_high:
                continue
            cv2.line(image, at(x_low, y), at(x_high, y), GREY, 1)
            label = f"{10.0 ** y:g}"
            cv2.putText(image, label, (5, at(x_low, y)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, BLACK, 1, cv2.LINE_AA)
    for row, x in zip(rows, xs):
        cv2.line(image, at(x, y_low), at(x, y_high), GREY, 1)
        label = f"{row['size']}^2"
        cv2.putText(image, label, (at(x, y_low)[0] - 18, height - bottom + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    BLACK, 1, cv2.LINE_AA)
    cv2.putText(image, "pixels (log)", (width // 2 - 40, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, BLACK, 1,
                cv2.LINE_AA)
    cv2.putText(image, f"{title} ({unit}, log)", (left, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.55, BLACK, 1, cv2.LINE_AA)
    for slope in (1, 2):                     # guides through the first point of the first series
        start = (xs[0], values[0, -1])
        end = (x_high, values[0, -1] + slope * (x_high - xs[0]))
        if end[1] > y_high:
            end = (xs[0] + (y_high - values[0, -1]) / slope, y_high)
        _dashed(image, at(*start), at(*end))
    for index, key in enumerate(keys):
        points = [at(x, y) for x, y in zip(xs, values[:, index])]
        for a, b in zip(points, points[1:]):
            cv2.line(image, a, b, SERIES[key], 2, cv2.LINE_AA)
        for point in points:
            cv2.circle(image, point, 4, SERIES[key], -1, cv2.LINE_AA)
        legend = (left + 10, top + 18 + 18 * index)
        cv2.line(image, (legend[0], legend[1] - 4), (legend[0] + 20, legend[1] - 4), SERIES[key], 2)
        cv2.putText(image, key, (legend[0] + 26, legend[1]), cv2.FONT_HERSHEY_SIMPLEX, 0.45, BLACK, 1, cv2.LINE_AA)
    guide = (left + 10, top + 18 + 18 * len(keys))
    _dashed(image, (guide[0], guide[1] - 4), (guide[0] + 20, guide[1] - 4))
    cv2.putText(image, "slopes 1 and 2", (guide[0] + 26, guide[1]), cv2.FONT_HERSHEY_SIMPLEX, 0.45, BLACK, 1,
                cv2.LINE_AA)
    return image


def _dashed(image: np.ndarray, start: tuple[int, int], end: tuple[int, int], dash: int = 6) -> None:
    length = max(1, int(math.hypot(end[0] - start[0], end[1] - start[1])))
    for offset in range(0, length, 2 * dash):
        a = offset / length
        b = min(offset + dash, length) / length
        cv2.line(image, (int(start[0] + a * (end[0] - start[0])), int(start[1] + a * (end[1] - start[1]))),
                 (int(start[0] + b * (end[0] - start[0])), int(start[1] + b * (end[1] - start[1]))),
                 (140, 140, 140), 1, cv2.LINE_AA)


def draw(rows: list[dict[str, float]], path: str) -> None:
    """Time and memory panels side by side, written as a PNG at ``path``."""
    picture = np.concatenate([_panel(rows, ["total", "attention", "rest"], "s", "seconds per fill"),
                              _panel(rows, ["peak", "work"], "MB", "peak resident memory")], axis=1)
    encoded, data = cv2.imencode(".png", picture)
    if not encoded:
        raise UserError(f"cannot encode the picture for {path}")
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        handle.write(data.tobytes())


def main() -> None:
    parser = ArgumentParser(prog="growth.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,512,1024,2048", help="comma-separated sides (multiples of 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per size after the warm-up")
    parser.add_argument("--checkpoint", help="weights to use (default: random initialisation)")
    parser.add_argument("--plot", help="also draw the log-log picture here (PNG)")
    add_cpu_precision(parser)
    args = parser.parse_args()
    try:
        sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    except ValueError:
        raise UserError(f"--sizes expects comma-separated integers, got {args.sizes!r}") from None
    if len(sizes) < 2 or any(size < 16 or size % 8 for size in sizes):
        raise UserError(f"--sizes needs two or more multiples of 8 of at least 16, got {args.sizes}")
    if args.repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {args.repeats}")
    rows = measure_sizes(sorted(sizes), args.repeats, args.checkpoint, args.cpu_precision)
    print_table(rows)
    if args.plot:
        draw(rows, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    run(main)

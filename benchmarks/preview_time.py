"""The first result in the viewer: time to the Deblur widget's preview on a 2048x2048 RGB layer, and to stop.

A real napari viewer (run it under Xvfb on a headless machine): an astronaut photo resized to 2048x2048,
blurred by a 21x21 shake kernel with 1 % noise; for MMSE, IRD and CRCNet (unit outputs off) the widget's
Deblur is pressed and the time until its preview layer is shown is measured, then Cancel is pressed and the
time until the job has stopped. Targets (issue 17): preview within 1 s for MMSE/IRD and 3 s for CRCNet,
stop within 1 s.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/preview_time.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import markdown_table, run_note, write_results


def _spin(app, until, limit: float) -> float:
    """Process Qt events until ``until()`` is true (or ``limit`` seconds); returns the seconds waited."""
    start = time.perf_counter()
    while not until() and time.perf_counter() - start < limit:
        app.processEvents()
        time.sleep(0.005)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 1024x1024 layer")
    args = parser.parse_args(argv)
    import napari
    from qtpy.QtWidgets import QApplication
    from skimage import data, transform

    import napari_crcnet as nc
    from napari_crcnet._widgets.deblur import DeblurWidget

    size = 1024 if args.quick else 2048
    viewer = napari.Viewer(show=True)
    photo = transform.resize(data.astronaut(), (size, size), anti_aliasing=True).astype(np.float32)
    kernel = nc.random_motion_kernel(21, seed=3)
    viewer.add_image(nc.blur(photo, kernel, noise=0.01, seed=0, channel_axis=-1), name="photo", rgb=True)
    viewer.add_image(kernel.astype(np.float32), name="photo kernel", visible=False)
    widget = DeblurWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.units.setChecked(False)
    app = QApplication.instance()
    _spin(app, lambda: False, 1.0)
    rows = []
    for method in ("MMSE", "IRD", "CRCNet"):
        widget.method.setCurrentText(method)
        shown: list[float] = []
        start = time.perf_counter()
        widget.preview_shown.connect(lambda _layer, s=start, out=shown: out.append(time.perf_counter() - s))
        widget.run()
        _spin(app, lambda out=shown: bool(out) or not widget.runner.running, 60)
        widget.runner.cancel_button.click()
        stop = _spin(app, lambda: not widget.runner.running, 120)
        widget.preview_shown.disconnect()
        rows.append([method, shown[0] if shown else "no preview", stop])
        print(rows[-1], flush=True)
    viewer.close()
    write_results("preview_time" + ("_quick" if args.quick else ""), "First result in the viewer",
                  __doc__.split("\n\n", 1)[1].split("    xvfb-run")[0] + f"Layer {size}x{size} RGB.\n\n"
                  + markdown_table(["method", "preview shown after (s)", "stopped after Cancel (s)"], rows)
                  + run_note())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The export dialog (current view or whole photo; scale, or width x height with the aspect
locked; PNG 8/16-bit, TIFF 8/16-bit, JPEG with quality; Best quality, the mean of 8 views
of the photo; the file name follows the scale until the person types one; format, scale,
Best quality and folder remembered; a target that cannot be written is said in the dialog,
which stays open) and the session that runs the export on the render thread with a
progress dialog and Cancel."""

from __future__ import annotations

import os

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QProgressDialog,
                               QPushButton, QRadioButton, QSpinBox, QVBoxLayout, QWidget)

from ..engine import formats
from .protocol import ExportJob
from .settings import app_settings, truthy

# label -> (format, bits, file suffix), one entry per depth of each format we write:
# "PNG, 8-bit", "PNG, 16-bit", ..., "JPEG"
FORMATS = {(f.name if len(f.write_bits) == 1 else f"{f.name}, {bits}-bit"): (f.name, bits, f.suffixes[0])
           for f in formats.WRITABLE for bits in f.write_bits}
MAX_SIDE = 65535
BEST_VIEWS = 8       # the views "Best quality" averages (engine/render/fusion.py)


def best_quality_box(checked: bool) -> QCheckBox:
    """The box that asks for the mean of BEST_VIEWS views (ExportJob.views)."""
    box = QCheckBox(f"Best quality ({BEST_VIEWS} views, slower)", checked=checked)
    box.setToolTip(f"Each pixel is the mean of {BEST_VIEWS} renders of the photo, flipped and turned: "
                   f"slightly more accurate, about {BEST_VIEWS} times the time")
    return box


class ExportDialog(QDialog):
    """Asks what to export. `view_region`/`view_size`: the visible part of the photo and
    its size on screen; `photo_size`: (W, H); `photo_path`: for the default file name."""

    def __init__(self, view_region, view_size, photo_size, photo_path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self._choices = {"view": (tuple(view_region), tuple(view_size), 1.0),
                         "photo": ((0.0, 0.0, float(photo_size[0]), float(photo_size[1])), tuple(photo_size), 2.0)}
        self._photo_path = Path(photo_path) if photo_path else Path.home() / "photo.png"
        remembered = app_settings()
        folder = str(remembered.value("export/folder", "") or "")
        self._folder = Path(folder) if folder and Path(folder).is_dir() else self._photo_path.parent
        self._syncing = False
        self._suggested = ""          # the last name we suggested: while the field holds it, it follows

        self.view_button = QRadioButton("Current view")
        self.photo_button = QRadioButton("Whole photo")
        group = QButtonGroup(self)
        for b in (self.view_button, self.photo_button):
            group.addButton(b)
        self.photo_button.setChecked(True)
        what = QHBoxLayout()
        what.addWidget(self.view_button)
        what.addWidget(self.photo_button)

        self.scale = QDoubleSpinBox(decimals=3, minimum=0.01, maximum=64.0, singleStep=0.5)
        self.width_box = QSpinBox(minimum=1, maximum=MAX_SIDE)
        self.height_box = QSpinBox(minimum=1, maximum=MAX_SIDE)
        self.lock = QCheckBox("Lock aspect ratio", checked=True)
        size = QHBoxLayout()
        size.addWidget(self.width_box)
        size.addWidget(self.height_box)
        size.addWidget(self.lock)

        self.format = QComboBox()
        self.format.addItems(list(FORMATS))
        self.quality = QSpinBox(minimum=1, maximum=100, value=95)
        self.best = best_quality_box(truthy(remembered.value("export/best", False)))
        self.path = QLineEdit()
        browse = QPushButton("Browse…")
        where = QHBoxLayout()
        where.addWidget(self.path, 1)
        where.addWidget(browse)

        form = QFormLayout()
        form.addRow("Export", what)
        form.addRow("Scale", self.scale)
        form.addRow("Width × height", size)
        form.addRow("Format", self.format)
        form.addRow("JPEG quality", self.quality)
        form.addRow("", self.best)
        form.addRow("File", where)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #d04040")
        self.problem.hide()
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)

        group.buttonToggled.connect(lambda *_: self._choice_changed())
        self.scale.valueChanged.connect(self._scale_changed)
        self.width_box.valueChanged.connect(lambda _: self._side_changed(0))
        self.height_box.valueChanged.connect(lambda _: self._side_changed(1))
        self.format.currentTextChanged.connect(self._format_changed)
        browse.clicked.connect(self._browse)
        label = str(remembered.value("export/format", "") or "")
        if label in FORMATS:
            self.format.setCurrentText(label)
        self._choice_changed()
        scale = remembered.value("export/scale", None)
        if scale is not None and self.photo_button.isChecked():
            try:
                self.scale.setValue(float(scale))
            except (TypeError, ValueError):
                pass
        self._format_changed(self.format.currentText())

    # -- keeping the fields consistent ---------------------------------------------------
    def _choice(self):
        return self._choices["view" if self.view_button.isChecked() else "photo"]

    def _choice_changed(self) -> None:
        _, _, scale = self._choice()
        self.scale.setValue(scale)
        self._scale_changed(scale)
        self._suggest_path()

    def _scale_changed(self, scale: float) -> None:
        if self._syncing:
            return
        _, (bw, bh), _ = self._choice()
        self._set_sides(round(bw * scale), round(bh * scale))
        self._follow()

    def _side_changed(self, axis: int) -> None:
        if self._syncing:
            return
        _, (bw, bh), _ = self._choice()
        w, h = self.width_box.value(), self.height_box.value()
        if self.lock.isChecked():
            if axis == 0:
                h = max(1, round(w * bh / bw))
            else:
                w = max(1, round(h * bw / bh))
        self._set_sides(w, h)
        self._syncing = True
        self.scale.setValue(w / bw)
        self._syncing = False
        self._follow()

    def _set_sides(self, w: int, h: int) -> None:
        self._syncing = True
        self.width_box.setValue(max(1, min(w, MAX_SIDE)))
        self.height_box.setValue(max(1, min(h, MAX_SIDE)))
        self._syncing = False

    def _format_changed(self, label: str) -> None:
        fmt, _, suffix = FORMATS[label]
        self.quality.setEnabled(fmt == "JPEG")
        text = self.path.text().strip()
        # a name that already has one of the format's suffixes (.tiff, .jpeg) keeps it
        if text and formats.write_format(text) != fmt:
            following = text == self._suggested
            self.path.setText(str(Path(text).with_suffix(suffix)))
            if following:
                self._suggested = self.path.text()

    def _follow(self) -> None:
        """A new scale or size renames the file, unless the person typed a name."""
        if self.path.text() == self._suggested:
            self._suggest_path()

    def _suggest_path(self) -> None:
        suffix = FORMATS[self.format.currentText()][2]
        what = "view-" if self.view_button.isChecked() else ""
        tag = f"{what}x{self.scale.value():g}"
        self._suggested = str(self._folder / f"{self._photo_path.stem}-{tag}{suffix}")
        self.path.setText(self._suggested)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path.text(),
                                              formats.save_dialog_filter())
        if path:
            self.path.setText(path)

    # -- the answer ----------------------------------------------------------------------
    def problem_with_target(self) -> str:
        """One sentence on why the file cannot be written there, or ""."""
        text = self.path.text().strip()
        if not text:
            return "Choose a file to export to."
        target = Path(text).expanduser()
        if target.is_dir():
            return f"{target} is a folder: add a file name."
        if not target.parent.is_dir():
            return f"The folder {target.parent} does not exist."
        if not os.access(target.parent, os.W_OK):
            return f"The folder {target.parent} cannot be written to."
        if formats.write_format(target) is None and not target.suffix == "":
            return f"{target.suffix} is not a format this viewer writes (PNG, TIFF or JPEG)."
        return ""

    def accept(self) -> None:
        """Close only with a target that can be written; otherwise say why and stay open."""
        problem = self.problem_with_target()
        if problem:
            self.problem.setText(problem)
            self.problem.show()
            return
        settings = app_settings()
        settings.setValue("export/format", self.format.currentText())
        settings.setValue("export/best", self.best.isChecked())
        settings.setValue("export/folder", str(Path(self.path.text().strip()).expanduser().parent))
        if self.photo_button.isChecked():
            settings.setValue("export/scale", self.scale.value())
        super().accept()

    def job(self, photo) -> ExportJob:
        region, _, _ = self._choice()
        fmt, bits, _ = FORMATS[self.format.currentText()]
        return ExportJob(photo, region, (self.width_box.value(), self.height_box.value()),
                         self.path.text().strip(), fmt, bits, self.quality.value(),
                         views=BEST_VIEWS if self.best.isChecked() else 1)


class ExportSession(QObject):
    """Runs one export on the render thread with a modal progress dialog and Cancel;
    says how it ended through `ended(message or "")` and the callbacks."""

    ended = Signal(str)

    def __init__(self, renderer, job: ExportJob, parent: QWidget, on_error) -> None:
        super().__init__(parent)
        self.renderer, self.job, self.on_error = renderer, job, on_error
        self.dialog = QProgressDialog(f"Exporting {Path(job.path).name}…", "Cancel", 0, 1000, parent)
        self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog.setMinimumDuration(0)
        self.dialog.setAutoClose(False)
        self.dialog.setAutoReset(False)
        self.dialog.canceled.connect(renderer.cancel_export)
        self.dialog.rejected.connect(renderer.cancel_export)   # Escape
        renderer.export_progress.connect(self._progress)
        renderer.export_finished.connect(self._finished)
        renderer.export_failed.connect(self._failed)
        renderer.export_cancelled.connect(self._cancelled)

    def start(self) -> None:
        self.dialog.setValue(0)
        self.dialog.show()
        self.renderer.start_export(self.job)

    def _progress(self, fraction: float) -> None:
        self.dialog.setValue(round(1000 * fraction))

    def _end(self, message: str) -> None:
        for signal, slot in ((self.renderer.export_progress, self._progress), (self.renderer.export_finished, self._finished),
                             (self.renderer.export_failed, self._failed),
                             (self.renderer.export_cancelled, self._cancelled)):
            signal.disconnect(slot)
        self.dialog.close()
        self.ended.emit(message)
        self.deleteLater()

    def _finished(self, path: str) -> None:
        self._end(f"exported {Path(path).name}")

    def _failed(self, message: str) -> None:
        self._end("")
        self.on_error(message)

    def _cancelled(self) -> None:
        self._end("export cancelled")

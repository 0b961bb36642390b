"""The viewer's settings (QSettings, always INI: tests point its location at a temporary
folder) and the names it is kept under."""

from __future__ import annotations

from PySide6.QtCore import QSettings

ORGANISATION = APPLICATION = "zoomviewer"


def app_settings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION)


def truthy(value) -> bool:
    """A QSettings boolean: INI files hand them back as the strings 'true' / 'false'."""
    return value is True or str(value).lower() == "true"

"""salign: S-Align and related speech-text alignment methods for end-to-end speech translation on ESPnet."""

__version__ = "0.1.0"

"""salign: S-Align and related speech-text alignment methods for end-to-end speech translation on ESPnet."""

from salign._g2p import defer_g2p_en

__version__ = "0.1.0"

# before anything imports ESPnet: its g2p_en import would try to download nltk data on every start (salign._g2p)
defer_g2p_en()

"""The unified S-Align speech/text translation model and its building blocks."""

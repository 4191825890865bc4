"""Text processing: source/target normalisation, tokenisation helpers."""

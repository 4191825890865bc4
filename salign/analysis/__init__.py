"""Analysis of trained models: cross-modal retrieval per layer (AI-STA layer selection) and the modality gap."""

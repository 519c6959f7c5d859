"""CoCa (Contrastive Captioners): model, collator and loss."""

"""Configs of model_initialization variants defined apart; see ../config.py."""

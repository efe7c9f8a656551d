"""A trained model for another framework: PyTorch (pytorch.py)."""

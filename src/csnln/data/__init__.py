"""Data utilities: MATLAB-exact bicubic resizing, datasets."""

"""The PyQt6 operator app: the only package that imports Qt."""

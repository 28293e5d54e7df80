"""Station drivers, one per protocol: Grbl (cut, machine), SCPI-style wash, camera/vision."""

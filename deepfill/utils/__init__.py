"""The bottom layer: file and image I/O, the pixel boundary, configuration, devices and command-line
plumbing. Nothing here imports ``models`` or any command; Paddle's environment is set by
``deepfill.utils.environment.prepare_paddle``, which each command calls first."""

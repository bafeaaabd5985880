"""Running a trained generator on users' pictures: the ``Filler`` that takes a picture and a hole and
returns the completed picture, its backends (``runners``: eager with the hole-only shortcut, Paddle
Inference and ONNX Runtime for exported models), the export (``export``) and ``open_model``, which opens a
checkpoint or an exported folder."""

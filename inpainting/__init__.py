"""Running a trained generator on users' pictures: the hole-only shortcut, the compiled CPU path and the
``Inpainter`` that takes a picture and a hole and returns the completed picture."""

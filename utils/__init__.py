"""Shared helpers: image I/O, checkpoints, configuration and command-line plumbing.

Importing this package first keeps Paddle's start-up chatter (glog INFO lines, the ccache warning) off
stderr, so that a user mistake is reported on exactly one line.
"""
import os
import warnings

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("FLAGS_call_stack_level", "0")
warnings.filterwarnings("ignore", message="No ccache found")

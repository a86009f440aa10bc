"""Synthetic clips with exact per-frame face truth, and reading and writing video files.

- ``moving_camera``: a 640x480 camera panning and zooming over a still with 24 faces (tracking,
  the service's streams sweep);
- ``catalog``: the 1080p small-faces clips by kind and seed, made and cached (small-faces,
  reidentify, proposals): ``street`` (street.py, people cut out by sprites.py) and ``group``
  (photo_wall.py), each a ``truth.Clip``;
- ``video``: frames out of a file, H.264 files out of frames.
"""

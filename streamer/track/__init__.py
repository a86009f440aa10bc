"""Face tracking below the stages: boxes follow faces between detections, ids and labels per track."""
